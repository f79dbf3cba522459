/* How an attempt relates to the attempt before it at the same instance: the diagnostics of
 * self-improvement (docs/DESIGN.md §7), shared by exitrl eval (every step k >= 1) and exitrl train
 * (its improve steps). An attempt is "right" when its reward is 1 (solved); graded domains also
 * count improved / worse / unchanged rewards. */
#ifndef EXITRL_RL_TRANSITIONS_H
#define EXITRL_RL_TRANSITIONS_H
#include <stddef.h>

typedef struct {
    long n;                          /* pairs counted */
    long right_right, right_wrong, wrong_right, wrong_wrong;
    long improved, worse, unchanged; /* reward up / down / within 1e-6 */
    long copies;                     /* the attempt repeats the previous one byte for byte */
    double edit_sum;                 /* sum of byte-level Levenshtein distances */
} transition_stats;

/* The same counts split by what the verifier said about the previous attempt: its feedback's class,
 * the text with every digit run replaced by '#' ("weight 20/17 over by 3" -> "weight #/#
 * over by #"). Shows whether a policy acts on its feedback (copies an attempt called optimal, repairs
 * one called over capacity). Classes keep their first-seen order; once TRANSITION_MAX_CLASSES - 1
 * exist, every further class is counted in a last one named "other". */
enum { TRANSITION_MAX_CLASSES = 12, TRANSITION_CLASS_CAP = 48 };
typedef struct {
    int n_classes;                                     /* [0, TRANSITION_MAX_CLASSES] */
    char name[TRANSITION_MAX_CLASSES][TRANSITION_CLASS_CAP]; /* NUL-terminated; JSON-safe bytes */
    transition_stats stats[TRANSITION_MAX_CLASSES];
} transition_classes;

/* Adds one pair: the previous attempt (bytes, reward) and the new one. */
void transition_add(transition_stats *s, const char *prev, size_t prev_len, float prev_reward, const char *next,
                    size_t next_len, float next_reward);
/* The class of a feedback text into out[cap] (cap >= 2): digit runs become '#', quotes, backslashes
 * and control bytes become '?', cut to cap - 1 bytes; "" (no feedback) becomes "(none)". */
void feedback_class(const char *feedback, char *out, size_t cap);
/* transition_add into the class of prev_feedback. */
void transition_classes_add(transition_classes *c, const char *prev_feedback, const char *prev, size_t prev_len,
                            float prev_reward, const char *next, size_t next_len, float next_reward);
/* share = count / n (0 when n = 0). */
double transition_share(const transition_stats *s, long count);
/* Levenshtein distance between two byte strings. Inputs longer than 1024 bytes (attempts are at
 * most 128) get an upper bound: the distance of the first 1024 bytes plus the longer leftover. */
size_t edit_distance(const char *a, size_t na, const char *b, size_t nb);
#endif
