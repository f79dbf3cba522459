/* The ExIt task buffer (docs/DESIGN.md §5): task histories ranked by learnability, sampled for replay.
 *
 * An entry is a base task instance, the history of attempts made on it so far (y^0..y^{depth-1},
 * each with its reward and verifier feedback) and its score S in [0,1]. Entries are fixed-size PODs
 * with the attempts inline, so the buffer is one array and serialises as plain bytes into a
 * checkpoint section.
 *
 * Rules:
 *   replay      at an episode start, replay iff size >= max(min_size, 1) and U < p_replay.
 *   sampling    P(i) = (1-rho)·P_score(i) + rho·P_stale(i), rho = staleness (0 = off).
 *               P_score: softmax, P(i) ∝ exp(kappa·S_i); or rank (PLR), P(i) ∝ (1/rank_i)^(1/rank_beta)
 *               with rank_i = 1 + #{j : S_j > S_i} (tied scores share a rank).
 *               P_stale(i) ∝ t - last_i, t the current iteration and last_i the iteration entry i
 *               was last sampled (or inserted); uniform when every entry has t - last_i = 0.
 *   prefix      the new task keeps a uniformly random number n_keep in [1, depth] of the entry's
 *               attempts (the prefix ends at attempt k' = n_keep-1 and the new task is step
 *               k'+1); the empty prefix is never chosen, except for a depth-0 entry (a bare base
 *               task, as the `curriculum` method stores), whose only prefix is n_keep = 0. In a
 *               multi-turn entry this is the random turn prefix of paper §4: a prefix ending at
 *               turn i's answer (n_keep <= turn) makes that answer the latest attempt at turn i
 *               (turn' = n_keep - 1); a longer one keeps the turn (turn' = turn).
 *   insertion   capacity N keeps the top N by score: while not full a newcomer is appended; when
 *               full it enters only if S >= the lowest score and replaces the entry with the
 *               lowest score, the oldest (smallest serial) of them when several tie. The held set is
 *               then exactly the top N of everything inserted by (score, serial), newer ahead on ties.
 *   indices     an entry keeps its index until an insertion replaces it, so update the sampled
 *               entries' scores before inserting an iteration's expansions; serial identifies an
 *               entry for good.
 *   iterations  the iteration given to insert and sample must never decrease. */
#ifndef EXITRL_RL_TASK_BUFFER_H
#define EXITRL_RL_TASK_BUFFER_H
#include <stddef.h>
#include <stdint.h>

#include "model/rng.h"
#include "tasks/task.h"

enum {
    BUFFER_MAX_DEPTH = 16,                  /* attempts per history */
    BUFFER_ANSWER_CAP = TASK_ANSWER_CAP,    /* answer bytes per attempt (no NUL stored) */
    BUFFER_FEEDBACK_CAP = TASK_FEEDBACK_CAP, /* feedback bytes per attempt (no NUL stored) */
    BUFFER_MAX_CAPACITY = 1 << 16
};

/* Return codes of insert and append besides an index or 0. */
enum {
    BUFFER_INSERT_REJECTED = -1, /* full and the newcomer's score is below the lowest: not an error */
    BUFFER_ERR_INVALID = -2,     /* a bad entry or argument; the message says which */
    BUFFER_ERR_TOO_DEEP = -3     /* the history would exceed BUFFER_MAX_DEPTH attempts */
};

enum { BUFFER_PRIORITY_SOFTMAX = 0, BUFFER_PRIORITY_RANK = 1 };

typedef struct {
    float reward;          /* in [0,1] */
    uint16_t answer_len;   /* <= BUFFER_ANSWER_CAP */
    uint16_t feedback_len; /* <= BUFFER_FEEDBACK_CAP; 0 = no feedback */
    char answer[BUFFER_ANSWER_CAP];     /* bytes [answer_len, cap) are zero */
    char feedback[BUFFER_FEEDBACK_CAP]; /* bytes [feedback_len, cap) are zero */
} buffer_attempt;

typedef struct {
    task_instance task;     /* the base task m (a whole episode for a multi-turn domain) */
    float score;            /* S in [0,1] */
    int16_t depth;          /* attempts held, in [0, BUFFER_MAX_DEPTH] */
    int16_t turn;           /* multi-turn episodes: history[0..turn) are the answers that ran at turns
                             * 0..turn-1 (with their turn rewards; their results are recomputed by
                             * replaying them), history[turn..depth) the attempts at turn `turn`;
                             * in [0, depth]. 0 for single-turn domains. (depth and turn share what
                             * was one int32 depth: entries written before read as turn 0.) */
    uint64_t serial;        /* insertion number, unique in a buffer; set by insert */
    uint64_t last_sampled;  /* iteration of the last draw, or of insertion; set by the buffer */
    buffer_attempt history[BUFFER_MAX_DEPTH]; /* [0, depth) used; the rest all zero */
} buffer_entry;
_Static_assert(sizeof(buffer_attempt) == 8 + BUFFER_ANSWER_CAP + BUFFER_FEEDBACK_CAP,
               "buffer_attempt has no padding");
_Static_assert(sizeof(buffer_entry) == 56 + BUFFER_MAX_DEPTH * sizeof(buffer_attempt),
               "buffer_entry has no padding: it is stored as raw bytes");

typedef struct {
    int capacity;     /* N, in [1, BUFFER_MAX_CAPACITY] */
    int min_size;     /* B_min, in [0, capacity] */
    float p_replay;   /* p, in [0,1] */
    float kappa;      /* softmax inverse temperature, finite and >= 0 (0 = uniform) */
    int priority;     /* BUFFER_PRIORITY_* */
    float rank_beta;  /* rank-mode temperature, in (0, 100] */
    float staleness;  /* rho, in [0,1] */
} task_buffer_options;

typedef struct {
    task_buffer_options opt;
    buffer_entry *entries;  /* [capacity]; [0, size) hold entries */
    int size;
    uint64_t next_serial;
    uint64_t clock;       /* the latest iteration given to insert or sample */
    double *prob;         /* [capacity] scratch: sampling probabilities */
    float *sorted;        /* [capacity] scratch: scores in descending order (rank mode) */
} task_buffer;

typedef struct {
    int size, capacity;
    double mean_score, min_score, max_score; /* 0 when empty */
    double mean_depth;
    int max_depth;
} task_buffer_stats;

/* ---- entries ---- */
/* A bare base task: depth 0, score 0, everything else zero. */
void buffer_entry_from_task(buffer_entry *e, const task_instance *task);
/* Adds attempt y^depth: answer[0..answer_len) (any bytes), its reward, and feedback (NULL or
 * feedback_len 0 for none). Returns 0; BUFFER_ERR_TOO_DEEP when the entry already holds
 * BUFFER_MAX_DEPTH attempts; BUFFER_ERR_INVALID for a reward outside [0,1] or an answer or feedback
 * longer than its cap (never truncated). On error the entry is unchanged. */
int buffer_entry_append(buffer_entry *e, const char *answer, size_t answer_len, float reward,
                      const char *feedback, size_t feedback_len, char *why, size_t why_cap);
/* Multi-turn: the entry's latest attempt becomes the answer that ran at its turn, and the entry
 * moves to the next turn with no attempt there yet (history[turn] = history[depth-1], the other
 * attempts at the turn dropped; turn and depth = turn + 1). Returns 0, or BUFFER_ERR_INVALID for an
 * entry without an attempt at its turn. */
int buffer_entry_next_turn(buffer_entry *e, char *why, size_t why_cap);
/* Full validation of an entry from outside: score and rewards in [0,1], depth and lengths in
 * range, unused bytes zero, and task_instance_check. Returns 0, BUFFER_ERR_TOO_DEEP or
 * BUFFER_ERR_INVALID, with a message. */
int buffer_entry_check(const buffer_entry *e, char *why, size_t why_cap);

/* ---- the buffer ---- */
/* Paper defaults: N 512, B_min 128, p 0.5, kappa 1, softmax, rank_beta 0.1 (PLR), staleness 0. */
void task_buffer_options_default(task_buffer_options *o);
/* 0, or -1 with a message naming the bad option and its allowed range. */
int task_buffer_options_check(const task_buffer_options *o, char *why, size_t why_cap);
/* An empty buffer. Returns 0, or -1 with a message (bad options, out of memory). */
int task_buffer_init(task_buffer *b, const task_buffer_options *o, char *why, size_t why_cap);
void task_buffer_free(task_buffer *b);

/* Entry at index in [0, size), or NULL. */
const buffer_entry *task_buffer_entry(const task_buffer *b, int index);
void task_buffer_get_stats(const task_buffer *b, task_buffer_stats *s);

/* 1 to replay a buffer entry at this episode start, 0 for a fresh base task. Draws exactly one
 * uniform from rng whatever the answer, so the stream does not depend on the buffer's size. */
int task_buffer_should_replay(const task_buffer *b, rng_state *rng);
/* The sampling distribution at `iteration` into p[0..size). Returns 0, or -1 when the buffer is
 * empty or iteration is earlier than the buffer's clock. Draws nothing and changes nothing. */
int task_buffer_probabilities(const task_buffer *b, uint64_t iteration, double *p);
/* Draws an index from that distribution (one 53-bit uniform from rng) and records the draw
 * (last_sampled = iteration, clock = iteration). Returns the index, or -1 as above. */
int task_buffer_sample(task_buffer *b, rng_state *rng, uint64_t iteration);
/* The number of attempts the new task keeps, n_keep: uniform in [1, depth] (one rng_below draw),
 * or 0 without a draw for a depth-0 entry; -1 for an index out of range. */
int task_buffer_prefix(const task_buffer *b, int index, rng_state *rng);
/* out = entry index cut to its first n_keep attempts (task, score kept; serial, last_sampled 0;
 * turn = min(turn, n_keep - 1), 0 for n_keep = 0).
 * Returns 0, or -1 for an index or n_keep out of range. */
int task_buffer_copy_prefix(const task_buffer *b, int index, int n_keep, buffer_entry *out);
/* Sets the score of entry index to S. Returns 0, or -1 for an index out of range or S outside
 * [0,1] (entry unchanged). */
int task_buffer_update_score(task_buffer *b, int index, float score);
/* Inserts a copy of e (its score is the inherited S; serial and last_sampled are assigned here,
 * last_sampled = iteration) by the rule above. Returns the index it now has; BUFFER_INSERT_REJECTED;
 * or BUFFER_ERR_INVALID / BUFFER_ERR_TOO_DEEP with a message (invalid entry, a held-out task: the
 * buffer holds training tasks only, iteration earlier than the clock), the buffer unchanged. */
int task_buffer_insert(task_buffer *b, const buffer_entry *e, uint64_t iteration, char *why,
                       size_t why_cap);

/* ---- serialisation (a checkpoint section) ----
 * Host byte order (little-endian on every supported machine):
 *   magic "EXITBUF" NUL (8 bytes), u32 version, u32 entry_bytes (sizeof(buffer_entry)),
 *   u32 capacity, u32 size, u64 next_serial, u64 clock, then size x buffer_entry as raw bytes.
 * Options are not stored: they come from the run's config. */
size_t task_buffer_serialized_size(const task_buffer *b);
/* Writes the buffer into dst[0..cap). Returns the bytes written, or 0 if cap is too small. */
size_t task_buffer_serialize(const task_buffer *b, void *dst, size_t cap);
/* Replaces the contents of an initialised buffer with src[0..n) after validating all of it:
 * header, exact length, capacity equal to the configured one, every entry (buffer_entry_check, a
 * training task), serials unique and below next_serial (which is at least size), last_sampled not
 * after the clock. Returns 0, or -1 with a message naming the problem (and the entry's index), the
 * buffer unchanged. What only the run knows (the task domain and knobs, the iteration reached) the
 * caller checks. */
int task_buffer_deserialize(task_buffer *b, const void *src, size_t n, char *why, size_t why_cap);
#endif
