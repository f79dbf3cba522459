/* Rollout engine: batched generation with a KV cache, on whichever backend runs the model.
 *
 * Prompts of different lengths are prefilled together (right-padded; causal attention keeps the
 * padding out of every real position); consecutive sequences with the same prompt (a GRPO group)
 * prefill it once and copy its KV rows to each sequence's cache (share_prefix), then each decode step feeds one token per sequence and
 * attends over its KV cache, a plain [layer][sequence][position][channel] array. Sampling runs on
 * the backend with a counter-based RNG keyed by (seed, sequence, position), so a seed gives the same
 * tokens on every run and on both backends. The host looks at the finished flags only every
 * `done_check_interval` steps. The engine reads the model's current weights when a generation
 * starts; on backends with a panel layout (ops.h) it multiplies by a copy laid out then. */
#ifndef EXITRL_ROLLOUT_H
#define EXITRL_ROLLOUT_H
#include <stddef.h>

#include "model/model.h"

typedef struct {
    gpt_model *model;            /* the policy whose current weights generate */
    int max_B, max_S;            /* sequences per chunk (fewer where the backend's decode_cache_bytes
                                  * asks), total length (prompt + new) capacity */
    int max_prefill_rows;        /* prefill processes at most this many prompt tokens at once */
    int done_check_interval;     /* decode steps between looks at the finished flags */
    int share_prefix;            /* 1 (the default): consecutive equal prompts are prefilled once */
    int use_panels;              /* 1 (the default; ignored on backends without panel_weight): each
                                  * rollout_generate lays the weights out once in the backend's panel
                                  * layout (ops.h) and its decode steps multiply by that copy */
    void *panel_buf;             /* backend memory, allocated at first use: every layer's four
                                  * matrices, then wte, in panel layout */
    gpt_layer_panels *layer_panels; /* [L] host array: pointers into panel_buf */
    const void *wte_panels;      /* the classifier's weight (wte) in panel_buf */
    int panels_ready;            /* panel_buf holds this generation's weights */
    /* backend memory */
    void *kcache, *vcache;       /* [L, max_B, max_S, C] each */
    int *tok_buf;                /* [max_B, max_S] prompt + generated tokens */
    float *logprob_buf;          /* [max_B, max_S] log-prob of each generated token */
    int *pos, *done, *limit;     /* [max_B] */
    int *gather_idx;             /* [max_B] prefill row holding each sequence's last prompt token */
    int *prefill_tokens;         /* [max_prefill_rows] */
    float *emb;                  /* [max_B, C] sum of emitting hidden states */
    void *decode_graph;          /* the captured decode step (backends with graphs) and what it */
    int graph_B, graph_offset;   /* was captured for: batch, sequence offset, sampling, weights */
    int graph_failed;            /* a capture failed: decode uncaptured */
    struct exitrl_sampling graph_sp;
    const void *graph_params;
    void *ws;                    /* activation workspace, carved below */
    void *res, *res2, *ln, *qkv, *att, *proj, *fch, *fchg, *last, *logits;
} rollout_engine;

typedef struct {
    int B, S;           /* sequences, row stride of tokens/logprobs */
    int *tokens;        /* [B*S] prompt, then generated tokens, then TOK_PAD */
    float *logprobs;    /* [B*S] log-prob of the generated token at each position, 0 elsewhere */
    int *prompt_len;    /* [B] */
    int *gen_len;       /* [B] generated tokens, including a final EOS */
    int *hit_eos;       /* [B] 1 when the sequence ended with EOS, 0 when it hit the length cap */
    float *embed;       /* [B*C] mean final hidden state over the states that emitted each token */
    int C;
} rollout_output;

/* Allocates the KV cache and workspaces for chunks of up to max_B sequences of total length up to
 * max_S (<= the model's max_seq). Returns 0, or -1 with a message. */
int rollout_create(rollout_engine *r, gpt_model *m, int max_B, int max_S);
void rollout_destroy(rollout_engine *r);

/* Generates up to max_new_tokens tokens after each of the B prompts (prompt b is
 * prompts[b*prompt_stride .. + prompt_lens[b]), every id in [0, vocab)). B may exceed max_B: the
 * engine works in chunks; sequence b draws its random numbers as sequence seq_offset + b. Fills
 * out (allocated by rollout_output_alloc for at least B x (max prompt + max_new_tokens)).
 * Returns 0, or -1 with a reason in err (prompt longer than the context, empty batch, bad sampling
 * parameters, bad token ids). */
int rollout_generate(rollout_engine *r, const int *prompts, const int *prompt_lens, int prompt_stride,
                     int B, int max_new_tokens, const struct exitrl_sampling *sp, int seq_offset,
                     rollout_output *out, char *err, size_t err_len);

/* Host buffers for B sequences of total length S and C embedding channels. Returns 0 or -1. */
int rollout_output_alloc(rollout_output *o, int B, int S, int C);
void rollout_output_free(rollout_output *o);
/* Checks sampling parameters; returns 0, or -1 with the reason. */
int sampling_validate(const struct exitrl_sampling *sp, char *err, size_t err_len);
#endif
