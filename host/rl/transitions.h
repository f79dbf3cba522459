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

/* Adds one pair: the previous attempt (bytes, reward) and the new one. */
void transition_add(transition_stats *s, const char *prev, size_t prev_len, float prev_reward, const char *next,
                    size_t next_len, float next_reward);
/* share = count / n (0 when n = 0). */
double transition_share(const transition_stats *s, long count);
/* Levenshtein distance between two byte strings. Inputs longer than 1024 bytes (attempts are at
 * most 128) get an upper bound: the distance of the first 1024 bytes plus the longer leftover. */
size_t edit_distance(const char *a, size_t na, const char *b, size_t nb);
#endif
