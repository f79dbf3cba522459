/* The policy: a GPT-2 (learned positions, pre-LayerNorm, GELU(tanh), tied input/output embedding).
 *
 * Like llm.c, all parameters live in one backend allocation carved into named tensors, in this
 * order (a linear weight is [out, in]):
 *   wte[Vp,C] wpe[maxT,C] ln1w[L,C] ln1b[L,C] qkvw[L,3C,C] qkvb[L,3C] attprojw[L,C,C] attprojb[L,C]
 *   ln2w[L,C] ln2b[L,C] fcw[L,4C,C] fcb[L,4C] fcprojw[L,C,4C] fcprojb[L,C] lnfw[C] lnfb[C]
 * fp32 master weights, fp32 gradients and fp32 AdamW moments use the same layout; the compute copy
 * (`params`) has the backend's activation dtype and aliases `master` when that is fp32.
 * The model calls compute only through exitrl_backend and never knows which backend runs it. */
#ifndef EXITRL_MODEL_H
#define EXITRL_MODEL_H

#include <stdint.h>

#include "ops.h"

typedef struct {
    int n_layer, n_head, d_model, max_seq;
    int vocab, vocab_padded; /* real vocab V and the padded row count Vp of wte / logits */
} gpt_config;

enum {
    P_WTE, P_WPE, P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB,
    P_LN2W, P_LN2B, P_FCW, P_FCB, P_FCPROJW, P_FCPROJB, P_LNFW, P_LNFB, GPT_NUM_PARAM_TENSORS
};

typedef struct {
    void *encoded;                  /* [B,T,C] */
    void *ln1; float *ln1_mean, *ln1_rstd;   /* [L,B,T,C], [L,B,T] */
    void *qkv;                      /* [L,B,T,3C] */
    void *atty; float *att_lse;     /* [L,B,T,C], [L,B,NH,T] */
    void *attproj;                  /* [L,B,T,C] */
    void *residual2;                /* [L,B,T,C] */
    void *ln2; float *ln2_mean, *ln2_rstd;
    void *fch, *fch_gelu;           /* [L,B,T,4C] */
    void *fcproj;                   /* [L,B,T,C] */
    void *residual3;                /* [L,B,T,C] */
    void *lnf; float *lnf_mean, *lnf_rstd;   /* [B,T,C], [B,T] */
    void *logits;                   /* [B,T,Vp]; holds dlogits after a backward */
    float *losses;                  /* [B,T] per-token loss (-log p(target)) */
    /* backward scratch */
    void *dresidual, *dbuf_c, *dbuf_3c, *dbuf_4c;
    /* batch inputs, backend memory */
    int *tokens, *targets;          /* [B,T]; target < 0 = not a target */
    float *loss_weights;            /* [B,T] weight of each token's loss (0 = masked) */
    /* GRPO per-token inputs and outputs [B,T] (see grpo_classifier in ops.h) */
    float *lp_old, *lp_ref, *adv, *lp_new, *loss_tok, *clipped;
    /* packed rows (gpt_set_packing): wpe row of each token [B,T], ops.h attention_forward_packed's
     * seg_start [B,T] and prefix_len [B]; enc_scratch [C] takes encoder_backward's unused sum */
    int *positions, *seg_start, *prefix_len;
    float *enc_scratch;
} gpt_acts;

typedef struct {
    float lr, beta1, beta2, eps, weight_decay, grad_clip;
} gpt_adamw_params;

typedef struct {
    gpt_config cfg;
    exitrl_backend *backend; /* runs every op; not owned */
    size_t param_sizes[GPT_NUM_PARAM_TENSORS];
    size_t param_offsets[GPT_NUM_PARAM_TENSORS];
    size_t num_params;
    float *master;      /* fp32 weights (backend memory) */
    void *params;       /* compute copy in act dtype (== master for fp32 backends) */
    float *grads;       /* fp32 gradients, accumulated by backward */
    float *adam_m, *adam_v;
    int adam_step;      /* AdamW steps taken so far */
    int max_B, max_T;   /* activation capacity: batches of B x T tokens with B*T <= max_B*max_T */
    void *acts_mem;
    gpt_acts acts;
    int grpo_has_ref;   /* the last gpt_set_grpo_inputs gave reference log-probs */
    int packed;         /* the batch is in packed rows (gpt_set_packing) */
    float *step_vals;   /* optimizer step values in backend memory (ops.h EXITRL_STEP_*) */
    /* gpt_train_step's captured step (backends with graphs): what it was captured for */
    void *step_graph;
    int graph_B, graph_T, graph_failed;
    void *graph_params;
    gpt_adamw_params graph_opt;
} gpt_model;

/* ---- the transformer block, written once ----
 * Training (gpt_forward*, whole sequences, activations kept for the backward) and the rollout
 * (rl/rollout.c: prefill into a KV cache, then one-token decode steps) run the same block. */

/* One layer's weights in the compute copy of the parameters (a linear weight is [out, in]). */
typedef struct {
    const void *ln1w, *ln1b;            /* [C] */
    const void *qkvw, *qkvb;            /* [3C, C], [3C] */
    const void *attprojw, *attprojb;    /* [C, C], [C] */
    const void *ln2w, *ln2b;            /* [C] */
    const void *fcw, *fcb;              /* [4C, C], [4C] */
    const void *fcprojw, *fcprojb;      /* [C, 4C], [C] */
    const void *next_lnw, *next_lnb;    /* [C]: the next layer's ln1, or lnf after the last layer */
} gpt_layer_weights;

/* Where one block reads and writes; N = B*T rows of act dtype unless said otherwise. Buffers may
 * alias where the block's order allows it (the rollout reuses one [N, C] buffer for ln1, ln2 and
 * ln_next, one for attproj and fcproj, and one for residual and residual3). */
typedef struct {
    const void *residual;               /* [N, C] block input x */
    const void *ln1;                    /* [N, C] LayerNorm1(x), written by the step before */
    void *qkv;                          /* [N, 3C] */
    void *atty;                         /* [N, C] attention output */
    float *att_lse;                     /* [B, NH, T] fp32 softmax statistics, or NULL */
    void *attproj;                      /* [N, C] */
    void *residual2;                    /* [N, C] x + attproj */
    void *ln2;                          /* [N, C] */
    float *ln2_mean, *ln2_rstd;         /* [N] fp32, or NULL (no backward) */
    void *fch, *fch_gelu;               /* [N, 4C] before and after GELU */
    void *fcproj;                       /* [N, C] */
    void *residual3;                    /* [N, C] block output residual2 + fcproj */
    void *ln_next;                      /* [N, C] LayerNorm of the output with next_lnw / next_lnb */
    float *ln_next_mean, *ln_next_rstd; /* [N] fp32, or NULL */
    const int *prefix_len, *seg_start; /* [B], [B, T]: packed rows (ops.h attention_forward_packed);
                                        * NULL: causal */
} gpt_block_acts;

/* One layer's matrix weights in the backend's panel layout (ops.h panel_weight), for decode steps. */
typedef struct {
    const void *qkvw, *attprojw, *fcw, *fcprojw;
} gpt_layer_panels;

/* One layer's KV cache for the rollout; NULL in training. */
typedef struct {
    void *k, *v;                        /* [B, S, C] each */
    int S;                              /* positions per sequence */
    const int *start_pos;               /* [B] (backend memory): a decode step (T = 1) writes row b at
                                         * start_pos[b] and attends over the cache; NULL: a prefill
                                         * writes positions 0..T-1 and attends causally within them */
    const gpt_layer_panels *panels;     /* this layer's weights laid out for decode steps (used only
                                         * with start_pos), or NULL: multiply by the weights as they are */
} gpt_block_cache;

/* The weights of layer l. */
gpt_layer_weights gpt_layer(const gpt_model *m, int l);
/* x -> residual2 = x + Attn(LN1(x)) -> residual3 = residual2 + MLP(LN2(residual2)), and ln_next =
 * LN_next(residual3) fused with the last add. With a cache, the block stores this step's K and V
 * first. B sequences of T tokens. */
void gpt_block_forward(gpt_model *m, const gpt_layer_weights *w, const gpt_block_acts *a,
                       const gpt_block_cache *cache, int B, int T);
/* Element `index` of an act-dtype tensor at base, and of parameter tensor t (P_*) in `params`. */
void *gpt_act_at(const gpt_model *m, const void *base, size_t index);
void *gpt_param(const gpt_model *m, int t, size_t index);

/* Named sizes. Returns 0 on success, or -1 with a message naming the unknown size. */
int gpt_config_preset(const char *name, gpt_config *cfg);
/* Checks a config for consistency (d_model % n_head == 0, positive sizes, Vp >= V). Writes a reason
 * into why on failure and returns -1. */
int gpt_config_validate(const gpt_config *cfg, char *why, size_t why_len);
/* Number of parameters of a config (with the padded embedding rows). */
size_t gpt_num_params(const gpt_config *cfg);
/* Bytes of activation memory gpt_create allocates for a batch capacity. */
size_t gpt_activation_bytes(const gpt_config *cfg, exitrl_dtype act, int B, int T);

/* Allocates parameters, gradients, optimizer state and activations for batches up to B x T
 * (T <= max_seq). Weights are zero until gpt_init_random or gpt_load_params. Returns -1 on
 * failure, with a message. */
int gpt_create(gpt_model *m, exitrl_backend *be, const gpt_config *cfg, int B, int T);
void gpt_destroy(gpt_model *m);
/* GPT-2 initialisation: N(0, 0.02) for matrices and embeddings, 0.02/sqrt(2L) for the residual
 * projections, LayerNorm weight 1, biases 0. Deterministic per seed; padded vocab rows are 0. */
void gpt_init_random(gpt_model *m, uint64_t seed);
/* Replaces all weights from host fp32 values in the layout above (num_params floats). */
void gpt_load_params(gpt_model *m, const float *host_params);

/* 1 when a batch of B sequences of T tokens fits the activation capacity and the context. */
int gpt_batch_fits(const gpt_model *m, int B, int T);
/* Copies one batch from host memory: tokens[B*T], targets[B*T] (-1 = no target) and
 * loss_weights[B*T] (NULL = uniform 1/(number of targets)). */
void gpt_set_batch(gpt_model *m, const int *tokens, const int *targets, const float *loss_weights,
                   int B, int T);
/* Forward over the batch in place: logits and per-token losses. */
void gpt_forward(gpt_model *m, int B, int T);
/* Forward, then backward of sum_n loss_weights[n] * losses[n]; gradients ACCUMULATE into m->grads
 * (call gpt_zero_grad first). Returns that weighted loss (downloads losses). */
float gpt_forward_backward(gpt_model *m, int B, int T);
/* Weighted loss of the last forward, computed on the host from the downloaded losses. */
float gpt_weighted_loss(gpt_model *m, int B, int T);
void gpt_zero_grad(gpt_model *m);

/* ---- GRPO ---- */
typedef struct {
    float inv_temp;           /* 1 / sampling temperature */
    float eps_low, eps_high;  /* ratio clip range [1 - eps_low, 1 + eps_high] */
    float beta;               /* k3 KL coefficient (needs reference log-probs) */
} gpt_grpo_params;

typedef struct {
    float loss;       /* sum_n weight[n] * loss_tok[n] */
    float clip_frac;  /* share of target tokens whose ratio was clipped */
    float kl;         /* mean k3 estimate of KL(pi || pi_ref) over target tokens (0 without ref) */
    long tokens;      /* target tokens */
} gpt_grpo_stats;

/* Packed rows (docs/DESIGN.md §5.6): B sequences of T tokens, each a prefix shared by segments that
 * continue it; from host memory: positions[B*T] (each token's position, < max_seq: its wpe row),
 * seg_start[B*T] and prefix_len[B] (ops.h attention_forward_packed). Applies to every forward and
 * backward until gpt_set_packing(m, NULL, ...) turns it off; T may exceed max_seq (B*T must fit the
 * capacity, gpt_packed_fits). Returns 0, or -1 when the backend lacks the packed attention ops (then
 * nothing changes). */
int gpt_set_packing(gpt_model *m, const int *positions, const int *seg_start, const int *prefix_len, int B, int T);
/* 1 when B packed rows of T tokens fit the activation capacity. */
int gpt_packed_fits(const gpt_model *m, int B, int T);
/* Per-token GRPO inputs from host memory, [B*T] each: log-probs under the sampling policy, under the
 * reference policy (NULL when beta = 0) and advantages. Tokens, targets (-1 = not a completion
 * token) and the aggregation weights come from gpt_set_batch. */
void gpt_set_grpo_inputs(gpt_model *m, const float *lp_old, const float *lp_ref, const float *adv, int B,
                         int T);
/* Forward, fused GRPO loss (ops.h grpo_classifier) and backward; gradients accumulate. Fills st
 * (may be NULL) from the per-token outputs. */
void gpt_forward_backward_grpo(gpt_model *m, int B, int T, const gpt_grpo_params *p, gpt_grpo_stats *st);
/* Log-probs of the batch's targets at temperature 1/inv_temp (0 where target < 0), into host_lp[B*T].
 * Uses the loss-weight and GRPO buffers as scratch: call gpt_set_batch / gpt_set_grpo_inputs after. */
void gpt_token_logprobs(gpt_model *m, int B, int T, float inv_temp, float *host_lp);

/* Clips the global gradient norm to grad_clip (when > 0) and takes one AdamW step; weight decay on
 * matrices and embeddings only. Returns the gradient norm before clipping. */
float gpt_update(gpt_model *m, const gpt_adamw_params *opt);
/* The same step, taken only when the gradient norm is finite: returns 0 after the step, or 1 when
 * the norm is NaN or infinite, with the weights, moments and adam_step untouched (the gradients
 * are left as they were). *grad_norm (may be NULL) gets the norm either way. */
int gpt_update_if_finite(gpt_model *m, const gpt_adamw_params *opt, float *grad_norm);
/* One whole training step on the batch of gpt_set_batch: zero the gradients, forward, loss,
 * backward, clipping and AdamW; the same arithmetic as gpt_zero_grad + gpt_forward_backward +
 * gpt_update. On a backend with graphs the device work is captured on the second call with the
 * same batch shape, weights and optimizer constants and replayed as one launch afterwards (lr and
 * the step count are uploaded before each launch). Returns the weighted loss; *grad_norm (may be
 * NULL) gets the norm before clipping. */
float gpt_train_step(gpt_model *m, int B, int T, const gpt_adamw_params *opt, float *grad_norm);

#endif
