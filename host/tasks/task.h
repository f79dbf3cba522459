/* The task interface shared by all synthetic domains (docs/DESIGN.md §6).
 *
 * A task instance is a 32-byte POD: (domain, split, seed, difficulty knobs). The concrete problem
 * (numbers, items) is regenerated from it on demand, deterministically, so instances can be stored
 * in the ExIt buffer and in checkpoints as plain bytes.
 *
 * Splits: the held-out split is the 1/TASK_HELDOUT_MODULUS of problems whose request text hashes to
 * 0 modulo TASK_HELDOUT_MODULUS; the train stream is the rest. The partition is on the problem's
 * content (its canonical request text), not on the seed, so no held-out problem is ever a training
 * problem, even where the knobs allow only a few hundred distinct problems and many seeds collide.
 *
 * Prompts (token ids from tokenizer.h):
 *   base:    BOS REQUEST <request> ANSWER
 *   improve: BOS REQUEST <request> RESPONSE <previous attempt> [FEEDBACK <feedback>] IMPROVE ANSWER
 *   diverge: the same with DIVERGE in place of IMPROVE
 * The model answers with bytes, then EOS. */
#ifndef EXITRL_TASK_H
#define EXITRL_TASK_H
#include <stddef.h>
#include <stdint.h>

#include "tasks/task_rng.h"

enum {
    TASK_MAX_KNOBS = 4,
    TASK_HELDOUT_MODULUS = 16,
    TASK_REQUEST_CAP = 256,  /* every domain's request text fits in this many bytes (with NUL) */
    TASK_ANSWER_CAP = 128,   /* every teacher answer fits in this many bytes (with NUL) */
    TASK_FEEDBACK_CAP = 64,  /* every feedback text fits in this many bytes (with NUL) */
    TASK_DRAW_TRIES = 4096,  /* seeds tried before task_draw gives up on a split */
    TASK_STATE_CAP = 64,     /* bytes of a multi-turn domain's environment state */
    TASK_RESULTS_CAP = 272   /* every turn's results text fits in this many bytes (with NUL) */
};

enum { TASK_DOMAIN_ARITH = 1, TASK_DOMAIN_COUNTDOWN = 2, TASK_DOMAIN_KNAPSACK = 3, TASK_DOMAIN_LEDGER = 4 };
enum { TASK_SPLIT_TRAIN = 0, TASK_SPLIT_HELDOUT = 1 };
enum { TASK_PROMPT_BASE = 0, TASK_PROMPT_IMPROVE = 1, TASK_PROMPT_DIVERGE = 2 };
/* Return codes of the rendering functions besides a length. */
enum { TASK_ERR_FIT = -1, TASK_ERR_ARG = -2 };

typedef struct {
    uint32_t domain;               /* TASK_DOMAIN_* */
    uint32_t split;                /* TASK_SPLIT_* it was drawn for */
    uint64_t seed;                 /* the problem is a function of (domain, seed, knobs) */
    int32_t knobs[TASK_MAX_KNOBS]; /* difficulty; meaning per domain; unused entries are 0 */
} task_instance;
_Static_assert(sizeof(task_instance) == 32, "task_instance is stored as raw bytes");

typedef struct {
    const char *name; /* as written in a knob spec, e.g. "ops" */
    int32_t min, max, def;
    const char *help;
} task_knob;

/* Multi-turn episodes (optional: task_domain.episode is NULL for single-turn domains;
 * docs/DESIGN.md §6). An episode is user turns 0..n-1 on an environment whose state (an opaque POD
 * of at most TASK_STATE_CAP bytes) each turn's answer changes; the environment's results of a turn
 * are shown before the next one. The domain's single-turn functions (render_request, score,
 * teacher_answer, ...) are turn 0 from the initial state. A turn is scored against the recorded
 * ground truth of the episode, from whatever state the earlier turns' answers left. */
typedef struct {
    /* Turns in the episode (>= 1), or TASK_ERR_ARG for an invalid instance. */
    int (*turns)(const task_instance *inst);
    /* The state before turn 0 into state[TASK_STATE_CAP]. Returns 0 or TASK_ERR_ARG. */
    int (*initial_state)(const task_instance *inst, void *state);
    /* The request of turn t, NUL-terminated into buf[cap] (turn 0: what render_request gives).
     * Returns its length, TASK_ERR_FIT, or TASK_ERR_ARG (invalid instance, t outside the episode). */
    int (*render_turn)(const task_instance *inst, int t, char *buf, size_t cap);
    /* Reward in [0,1] of answer[0..len) (any bytes) as turn t's answer, executed from *before:
     * after (may be NULL) receives the state it leaves, results (may be NULL) the environment's
     * NUL-terminated results text (TASK_RESULTS_CAP always suffices), feedback as score's. Returns -1
     * for an invalid instance, turn or state, or a buffer too small. */
    float (*score_turn)(const task_instance *inst, int t, const void *before, const char *answer,
                        size_t len, void *after, char *results, size_t results_cap, char *feedback,
                        size_t feedback_cap);
    /* The noisy teacher at turn t (as teacher_answer; right means right from the ground-truth state
     * before the turn). Same returns as teacher_answer, TASK_ERR_ARG also for t outside. */
    int (*teacher_turn)(const task_instance *inst, int t, task_rng *rng, float p_correct, char *buf,
                        size_t cap);
    /* As teacher_improve, at turn t. Same returns. */
    int (*teacher_improve_turn)(const task_instance *inst, int t, const char *prev, size_t prev_len,
                                task_rng *rng, float p_correct, char *buf, size_t cap);
} task_episode;

typedef struct task_domain task_domain;
struct task_domain {
    const char *name; /* "arith", "countdown", "knapsack", "ledger" */
    uint32_t id;      /* TASK_DOMAIN_* */
    int n_knobs;
    task_knob knobs[TASK_MAX_KNOBS];
    /* The request text, NUL-terminated, into buf[cap]. Returns its length, or TASK_ERR_FIT if it
     * does not fit, or TASK_ERR_ARG for an invalid instance. */
    int (*render_request)(const task_instance *inst, char *buf, size_t cap);
    /* Reward in [0,1] of the answer bytes answer[0..len) (no NUL needed; any bytes allowed).
     * When feedback is not NULL it receives a short NUL-terminated verifier message (a buffer of
     * TASK_FEEDBACK_CAP always suffices). Returns -1 for an invalid instance or a feedback buffer
     * too small for the message. */
    float (*score)(const task_instance *inst, const char *answer, size_t len, char *feedback,
                   size_t feedback_cap);
    /* A noisy teacher: with probability p_correct a correct (for knapsack: optimal) answer, else a
     * plausible, well-formed wrong one; p_correct < 0 uses teacher_p_correct(inst). Writes the
     * NUL-terminated answer into buf[cap]; returns its length, TASK_ERR_FIT or TASK_ERR_ARG. */
    int (*teacher_answer)(const task_instance *inst, task_rng *rng, float p_correct, char *buf,
                          size_t cap);
    /* Optional (NULL: improve demonstrations of a wrong attempt target a fresh teacher_answer).
     * The teacher's next attempt after a wrong or suboptimal one, prev[0..prev_len) (any bytes),
     * strictly better than prev when prev is well formed: knapsack makes one local-search move,
     * countdown one edit of the equation (hill climbing, so that steps compose). Same returns as
     * teacher_answer. */
    int (*teacher_improve)(const task_instance *inst, const char *prev, size_t prev_len, task_rng *rng,
                           float p_correct, char *buf, size_t cap);
    /* The teacher's default accuracy for this instance; lower for harder knobs. */
    float (*teacher_p_correct)(const task_instance *inst);
    /* 1 when answer[0..len) has the domain's answer format (an integer, an equation, a list of
     * distinct item indices), right or wrong; 0 otherwise, and -1 for an invalid instance. */
    int (*well_formed)(const task_instance *inst, const char *answer, size_t len);
    const task_episode *episode; /* multi-turn episodes, or NULL (single-turn) */
};

extern const task_domain task_arith;
extern const task_domain task_countdown;
extern const task_domain task_knapsack;
extern const task_domain task_ledger; /* tasks/ledger.h: the first turn of a multi-turn episode */

/* ---- registry ---- */
int task_domain_count(void);
const task_domain *task_domain_at(int i);            /* 0 <= i < count, else NULL */
const task_domain *task_domain_find(const char *name); /* NULL if no domain has that name */
const task_domain *task_domain_by_id(uint32_t id);     /* NULL if unknown */

/* ---- knobs ---- */
/* Fills knobs with the domain's defaults (unused entries 0). */
void task_knobs_default(const task_domain *d, int32_t knobs[TASK_MAX_KNOBS]);
/* Parses "name=value,name=value" (spaces allowed around items; "" keeps all defaults) on top of
 * the defaults. Returns 0, or -1 with a message naming the bad knob or value in why. */
int task_knobs_parse(const task_domain *d, const char *spec, int32_t knobs[TASK_MAX_KNOBS],
                     char *why, size_t why_cap);
/* 0 if every knob is in range and unused ones are 0, else -1 with a message. */
int task_knobs_check(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], char *why,
                     size_t why_cap);
/* Full validation of an instance read from outside (checkpoint, buffer): known domain, valid
 * knobs and split, and the split it names is the one its content belongs to. 0 or -1 + message. */
int task_instance_check(const task_instance *inst, char *why, size_t why_cap);

/* ---- splits ---- */
/* The split a problem belongs to, from its request text: TASK_SPLIT_*, or -1 for an invalid
 * instance. */
int task_content_split(const task_domain *d, const task_instance *inst);
/* The index-th instance of a split of the stream named by stream_seed (random access,
 * deterministic). Returns 0, or -1 with a message (invalid knobs or split; or no problem of that
 * split found in TASK_DRAW_TRIES seeds, which happens only when the knobs allow very few problems). */
int task_draw(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], int split,
              uint64_t stream_seed, uint64_t index, task_instance *out, char *why, size_t why_cap);

/* For domain implementations: formats a feedback message into feedback[cap] (nothing when
 * feedback is NULL). Returns 0, or -1 if it does not fit (then feedback holds ""). */
int task_write_feedback(char *feedback, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- prompts (prompt.c) ---- */
/* Renders a prompt of mode TASK_PROMPT_* as token ids into tokens[cap]. For improve and diverge,
 * prev[0..prev_len) is the previous attempt's bytes (required; any bytes) and feedback, when not
 * NULL, adds a FEEDBACK section with feedback[0..feedback_len). Returns the token count,
 * TASK_ERR_FIT if it does not fit in cap (nothing is truncated), or TASK_ERR_ARG for an invalid
 * instance or mode, a base prompt given an attempt, or an iteration prompt without one. */
int task_render_prompt(const task_domain *d, const task_instance *inst, int mode, const char *prev,
                       size_t prev_len, const char *feedback, size_t feedback_len, int *tokens,
                       int cap);

/* One earlier turn of a multi-turn history: the answer that ran and the environment's results. */
typedef struct {
    const char *answer;
    size_t answer_len;
    const char *results;
    size_t results_len;
} task_turn_record;

/* The prompt of turn t of a multi-turn episode (d->episode not NULL) after the earlier turns
 * earlier[0..t) (NULL when t = 0): each earlier turn as it was played, then turn t as
 * task_render_prompt renders a request:
 *   BOS {REQUEST <request i> ANSWER <answer i> FEEDBACK <results i>} for i < t, then
 *   REQUEST <request t> [RESPONSE <previous attempt> [FEEDBACK <feedback>] IMPROVE|DIVERGE] ANSWER
 * (turn 0 renders exactly what task_render_prompt does). Same arguments and returns as
 * task_render_prompt, TASK_ERR_ARG also for a single-turn domain or t outside the episode. */
int task_render_turn_prompt(const task_domain *d, const task_instance *inst, int t,
                            const task_turn_record *earlier, int mode, const char *prev, size_t prev_len,
                            const char *feedback, size_t feedback_len, int *tokens, int cap);

/* ---- supervised demonstrations (demos.c) ---- */
/* What an improve demonstration targets (a diverge demonstration always targets a fresh answer). */
enum {
    TASK_DEMO_FRESH = 0,  /* a fresh teacher answer, independent of the attempt shown: the formats only */
    TASK_DEMO_IMPROVE = 1 /* the attempt shown when it is right (reward 1), else the teacher's
                           * improvement of it (teacher_improve, or a fresh answer without one) */
};

typedef struct {
    float p_improve;  /* probability of an improve-format example */
    float p_diverge;  /* probability of a diverge-format example (base otherwise) */
    float p_feedback; /* probability that an iteration example shows the attempt's feedback */
    float p_correct;  /* teacher accuracy; < 0 = the domain's default for the instance */
    int targets;      /* TASK_DEMO_*: what improve examples target */
    float p_shown_correct; /* accuracy of the attempt an iteration example shows; < 0 = p_correct */
} task_demo_options;

/* One supervised example in next-token form: tokens[i] is the input at position i and targets[i]
 * the token to predict after it. The sequence is a prompt followed by a teacher answer and EOS;
 * targets are the answer bytes and the EOS, every prompt position has target -1, and the EOS is
 * only a target, never an input. An improve/diverge example shows a teacher attempt (with its
 * feedback, with probability p_feedback); a diverge example, and an improve example with targets =
 * TASK_DEMO_FRESH, targets a fresh, independent teacher attempt (the policy learns the formats, not
 * to improve); with TASK_DEMO_IMPROVE an improve example keeps a right attempt and improves a wrong
 * one. For a multi-turn domain (d->episode) whose episode has n > 1 turns, the example is about a
 * uniformly drawn turn t, after turns 0..t-1 played right by the teacher (task_render_turn_prompt;
 * the answer, attempt and feedback are turn t's from the state they left); with one turn it is the
 * single-turn example. Draws from rng in a fixed order (deterministic).
 * Returns the length (positions filled in tokens and targets), TASK_ERR_FIT if it needs more
 * than cap positions, or TASK_ERR_ARG for an invalid instance or options. */
int task_make_demo(const task_domain *d, const task_instance *inst, task_rng *rng,
                   const task_demo_options *opt, int *tokens, int *targets, int cap);
#endif
