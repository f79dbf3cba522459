/* GRPO policy update from a batch of rollouts: packs each (prompt, completion) into a row, weights
 * its completion tokens by the chosen aggregation, and takes epochs x minibatches AdamW steps with
 * the fused GRPO loss (ops.h grpo_classifier). The reference policy's log-probs come from a second
 * weight set swapped into the same model, so no second model is allocated. */
#ifndef EXITRL_GRPO_H
#define EXITRL_GRPO_H
#include "model/model.h"
#include "run/config.h"
#include "rl/rollout.h"

/* Test-only faults (grpo_options.test_fault): a NaN put into the first advantage, the first target's
 * sampling log-prob (so the loss) or the first gradient, to check that numeric faults are caught. */
enum { GRPO_FAULT_NONE, GRPO_FAULT_ADV, GRPO_FAULT_LOSS, GRPO_FAULT_GRAD };

typedef struct {
    int aggregation;       /* GRPO_AGG_*: per-sequence mean then mean | token mean | sum / (n x max_len) */
    int epochs, minibatches;
    int max_new_tokens;    /* the dr_grpo normaliser's max_len */
    gpt_grpo_params loss;  /* temperature, clip range, KL beta */
    gpt_adamw_params opt;
    int test_fault;        /* GRPO_FAULT_*; 0 in every real run */
    int share_prefix;      /* 1: completions of one prompt share its rows (packed rows, docs/DESIGN.md
                            * §5.6) where the backend has the packed attention ops; 0: a row each */
    int rank_lo, rank_hi;  /* data parallelism (dist/dist.h): this rank trains on completions
                            * [rank_lo, rank_hi) of each minibatch's rows, the loss weights stay those
                            * of the whole minibatch, and gradients and statistics are summed over
                            * ranks before each step; rank_hi = 0: all n (one process) */
} grpo_options;

typedef struct {
    float loss, kl, clip_frac, grad_norm;  /* means over the steps; NaN when a value was not finite */
    long tokens;           /* completion tokens trained on (per epoch) */
    long row_tokens;       /* tokens the forwards ran over, padding included (per epoch): with
                            * share_prefix each prompt counts once per packed row */
    int steps;             /* optimizer steps of the update (epochs x minibatches) */
    int skipped;           /* of those, skipped for a non-finite value (see grpo_update) */
    const char *skip_reason; /* the first one's: "advantage", "loss", "KL" or "gradient norm"; or NULL */
} grpo_stats;

/* The reference policy: fp32 weights plus their compute copy (aliases when fp32). */
typedef struct {
    float *master;
    void *params;
} grpo_reference;

/* Allocates the reference weights as a copy of the model's current weights. Returns 0 or -1. */
int grpo_reference_init(grpo_reference *ref, gpt_model *m);
/* theta_ref <- alpha * theta + (1 - alpha) * theta_ref. */
void grpo_reference_update(grpo_reference *ref, gpt_model *m, float alpha);
void grpo_reference_free(grpo_reference *ref, gpt_model *m);

/* The AdamW steps one update on n completions takes: epochs x the number of minibatches of
 * ceil(n / minibatches) rows (fewer than `minibatches` when n is not a multiple). n, minibatches,
 * epochs >= 1. */
int grpo_update_steps(int n, int minibatches, int epochs);

/* One update on the n completions of `ro` (rows 0..n-1) with advantages adv[n]. The model must
 * have been created with batch capacity >= ceil(n / minibatches) rows of T >= the longest row.
 * ref may be NULL when loss.beta == 0. Numeric faults skip steps, never corrupt the model: a
 * non-finite advantage skips every step; a step whose loss, KL or gradient norm is not finite is
 * not taken (weights, AdamW moments and step count untouched: gpt_update_if_finite); st counts
 * them. Returns 0, or -1 with a message (bad shapes). */
int grpo_update(gpt_model *m, const grpo_reference *ref, const rollout_output *ro, int n, const float *adv,
                const grpo_options *o, grpo_stats *st);
#endif
