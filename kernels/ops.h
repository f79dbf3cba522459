/* exitrl backend interface: a struct of function pointers plus an opaque context.
 *
 * The model, the optimizer, the rollout engine and the RL code call the compute only through this
 * struct, so they never know which backend runs them. Two backends implement it: the CPU reference
 * (kernels/cpu, fp32, the numerical oracle) and CUDA (kernels/cuda, bf16 or fp32 activations).
 *
 * Conventions, shared by every op:
 * - All pointers are backend memory (host memory for the CPU backend, device memory for CUDA),
 *   allocated with be->alloc. Ops may run asynchronously; be->sync or a download waits for them.
 * - "act" tensors (activations, activation gradients, compute copies of the weights) have the
 *   backend's activation dtype: be->act_dtype (EXITRL_F32 or EXITRL_BF16). They are typed void*.
 * - float* tensors are always fp32: master weights, parameter gradients, optimizer state, LayerNorm
 *   statistics, attention log-sum-exp, losses and per-token weights. int* are int32 token ids.
 * - Matrices are row-major. A linear layer's weight is [OC, C] (PyTorch nn.Linear layout):
 *   out[n, o] = sum_c inp[n, c] * w[o, c] + b[o].
 * - Parameter gradients (dweight, dbias, dwte, dwpe, dw, db) are ACCUMULATED (+=), so gradient
 *   accumulation and the tied embedding work; activation gradients are overwritten unless the
 *   op says "accumulates".
 * - N = number of rows (B*T), C = channels, OC = output channels, NH = heads, V = real vocab,
 *   Vp = padded vocab (row stride of the logits).
 * - Every member is required except where its section says optional: the packed-row attention
 *   and the graphs, which a backend may leave NULL (the default; the host then does without).
 */
#ifndef EXITRL_OPS_H
#define EXITRL_OPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EXITRL_F32 = 0, EXITRL_BF16 = 1 } exitrl_dtype;

/* group_advantage scale modes and score_groups selection modes. */
enum { EXITRL_SCALE_GROUP = 0, EXITRL_SCALE_BATCH = 1, EXITRL_SCALE_NONE = 2 };
enum { EXITRL_SELECT_ALL = 0, EXITRL_SELECT_BEST = 1, EXITRL_SELECT_RANDOM = 2, EXITRL_SELECT_TOPK = 3 };

static inline size_t exitrl_dtype_size(exitrl_dtype t) { return t == EXITRL_BF16 ? 2 : 4; }

typedef struct exitrl_backend exitrl_backend;

/* Sampling rules, shared by both backends. Tokens are ranked by probability (higher first, ties by
 * lower id). top_k > 0 keeps the k best ranked; top_p < 1 keeps a token when the probability mass
 * ranked before it is < top_p (the smallest prefix reaching top_p); both filters apply together.
 * A uniform u in [0,1) times the kept mass selects the first kept token, in id order, whose running
 * sum of kept probabilities exceeds it. greedy takes the argmax (ties: lowest id). */
struct exitrl_sampling {
    float temperature; /* > 0 */
    int top_k;         /* 0 = no top-k filter */
    float top_p;       /* (0, 1]; 1 = no nucleus filter */
    int greedy;        /* 1 = argmax, no randomness */
    int eos;           /* token id that ends a sequence */
    uint64_t seed;
};

/* Layout of the optimizer's step values (see "optimizer" below). */
enum {
    EXITRL_STEP_LR = 0,    /* learning rate */
    EXITRL_STEP_BC1 = 1,   /* 1 - beta1^t */
    EXITRL_STEP_BC2 = 2,   /* 1 - beta2^t */
    EXITRL_STEP_T = 3,     /* the 1-based step t (exact as a float up to 2^24) */
    EXITRL_STEP_NORM = 4,  /* gradient norm, written by grad_norm_clip */
    EXITRL_STEP_SCALE = 5, /* gradient scale (clipping), written by grad_norm_clip */
    EXITRL_STEP_NVALS = 6
};

/* The host-written step values of AdamW step t (1-based); norm 0 and scale 1 until grad_norm_clip. */
static inline void exitrl_step_vals_set(float vals[EXITRL_STEP_NVALS], float lr, int t, float beta1, float beta2) {
    vals[EXITRL_STEP_LR] = lr;
    vals[EXITRL_STEP_BC1] = 1.0f - powf(beta1, (float)t);
    vals[EXITRL_STEP_BC2] = 1.0f - powf(beta2, (float)t);
    vals[EXITRL_STEP_T] = (float)t;
    vals[EXITRL_STEP_NORM] = 0.0f;
    vals[EXITRL_STEP_SCALE] = 1.0f;
}

enum { EXITRL_COMM_ID_BYTES = 128 }; /* the id comm_unique_id writes (an NCCL unique id) */

struct exitrl_backend {
    const char *name;        /* "cpu" or "cuda" */
    exitrl_dtype act_dtype;  /* dtype of activations and of the compute copy of the weights */
    void *ctx;               /* backend-private state (handles, streams, workspaces) */

    /* ---- memory ---- */
    /* Returns zeroed memory of the given size, or NULL with a message on stderr naming the size. */
    void *(*alloc)(exitrl_backend *be, size_t bytes);
    void (*free)(exitrl_backend *be, void *p);
    void (*upload)(exitrl_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(exitrl_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(exitrl_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(exitrl_backend *be, void *p, size_t bytes);
    void (*sync)(exitrl_backend *be);
    /* Converts n fp32 values to act dtype (a plain copy when act_dtype is F32; dst may equal src then). */
    void (*f32_to_act)(exitrl_backend *be, void *dst, const float *src, size_t n);
    /* Converts n act-dtype values to fp32. */
    void (*act_to_f32)(exitrl_backend *be, float *dst, const void *src, size_t n);

    /* ---- transformer forward ---- */
    /* out[B,T,C] = wte[tok[b,t], :] + wpe[t, :]. tok values must be in [0, Vp). */
    void (*encoder_forward)(exitrl_backend *be, void *out, const int *tok, const void *wte,
                            const void *wpe, int B, int T, int C);
    /* out[N,C] = LayerNorm(inp) * w + b with eps = 1e-5 and the biased variance; saves mean[N],
     * rstd[N] = 1/sqrt(var + eps) (both may be NULL at inference). */
    void (*layernorm_forward)(exitrl_backend *be, void *out, float *mean, float *rstd,
                              const void *inp, const void *w, const void *b, int N, int C);
    /* Fused residual add + LayerNorm: res[N,C] = a + b_in; out = LayerNorm(res) * w + bias. */
    void (*residual_layernorm_forward)(exitrl_backend *be, void *res, void *out, float *mean,
                                       float *rstd, const void *a, const void *b_in,
                                       const void *w, const void *bias, int N, int C);
    /* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] (bias may be NULL).
     * If pre_gelu != NULL: pre_gelu = that sum and out = GELU_tanh(pre_gelu). */
    void (*matmul_forward)(exitrl_backend *be, void *out, void *pre_gelu, const void *inp,
                           const void *w, const void *bias, int N, int C, int OC);
    /* Causal multi-head self-attention. qkv[B,T,3C] holds q | k | v, each split into NH heads of
     * hs = C/NH contiguous channels (C % NH == 0); scores are q.k / sqrt(hs).
     * out[B,T,C]; lse[B,NH,T] = per-row natural log-sum-exp of the scaled scores (saved for the
     * backward; may be NULL at inference). Never materialises T x T in backend memory. */
    void (*attention_forward)(exitrl_backend *be, void *out, float *lse, const void *qkv, int B,
                              int T, int C, int NH);
    /* Fused classifier. logits[N,Vp] (act) and targets[N] (each < V; the host validates them).
     * For each row with targets >= 0:
     *   losses[n] = logsumexp(logits[n, :V]) - logits[n, target]          (fp32, may be NULL)
     * and losses[n] = 0 for rows with target < 0.
     * If dloss_weights != NULL, logits are overwritten IN PLACE by
     *   dlogits[n, v] = dloss_weights[n] * (softmax(logits[n])[v] - [v == target])  for v < V,
     * and 0 for padded columns v >= V and for rows with target < 0 or weight 0.
     * (A weight w_n makes dlogits the gradient of sum_n w_n * losses[n].) */
    void (*classifier_forward_backward)(exitrl_backend *be, void *logits, float *losses,
                                        const float *dloss_weights, const int *targets, int N,
                                        int V, int Vp);

    /* ---- transformer backward ---- */
    /* dwte[Vp,C] += scatter of dout over tokens; dwpe[T,C] += sum over batch. With T = 1 it is a
     * plain scatter-add of N = B rows by an index array into any [rows, C] table (dwpe[0] then gets
     * the sum of all rows): packed rows scatter their position gradients into dwpe that way. */
    void (*encoder_backward)(exitrl_backend *be, float *dwte, float *dwpe, const void *dout,
                             const int *tok, int B, int T, int C);
    /* LayerNorm backward. dinp ACCUMULATES (+=) so the residual stream's gradient is summed
     * in place; dw, db accumulate as parameter gradients. */
    void (*layernorm_backward)(exitrl_backend *be, void *dinp, float *dw, float *db,
                               const void *dout, const void *inp, const void *w,
                               const float *mean, const float *rstd, int N, int C);
    /* Matmul backward. If pre_gelu != NULL, dout is the gradient w.r.t. GELU's output and the
     * GELU backward is applied first (dout is then overwritten with the pre-activation gradient).
     * dinp[N,C] overwritten (skipped when NULL); dweight[OC,C] += ; dbias[OC] += (skipped if NULL). */
    void (*matmul_backward)(exitrl_backend *be, void *dinp, float *dweight, float *dbias,
                            void *dout, const void *inp, const void *w, const void *pre_gelu,
                            int N, int C, int OC);
    /* Attention backward: dqkv[B,T,3C] overwritten, from dout[B,T,C] and the forward's
     * qkv, out and lse. */
    void (*attention_backward)(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                               const void *out, const float *lse, int B, int T, int C, int NH);

    /* ---- packed rows (optional, default NULL: a backend without them leaves both NULL and the host
     * runs the unshared layout instead, which changes speed and float rounding, not results) ----
     * A packed sequence holds a prefix shared by several segments, each of which continues it (the
     * GRPO update's layout: a prompt, then each completion; docs/DESIGN.md §5.6). Query t of
     * sequence b sees key s iff s <= t and (s < prefix_len[b] or s >= seg_start[b*T + t]), where
     * prefix_len[B] and seg_start[B, T] are int32 backend memory: seg_start is the first row of t's
     * segment (>= prefix_len[b]) for segment rows, and 0 for prefix and padding rows (plain causal).
     * Otherwise exactly attention_forward / attention_backward: same scale, lse[B,NH,T] saved (may be
     * NULL), dqkv overwritten, a prefix key's gradient summed over every segment that sees it. */
    void (*attention_forward_packed)(exitrl_backend *be, void *out, float *lse, const void *qkv,
                                     const int *prefix_len, const int *seg_start, int B, int T, int C, int NH);
    void (*attention_backward_packed)(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                                      const void *out, const float *lse, const int *prefix_len,
                                      const int *seg_start, int B, int T, int C, int NH);

    /* ---- weights in panels for decode steps (optional, default NULL: decode steps call
     * matmul_forward on the weights as they are; all three members or none) ----
     * A backend whose matrix products re-lay out the weight matrix on every call (the CPU's
     * CBLAS packs w into panels each time) may offer a layout of its own: a rollout lays each
     * weight out once, when it starts (the weights do not change during it), and its decode steps
     * multiply by that copy. The layout is the backend's own; the host only sizes and passes it. */
    /* Bytes of backend memory that w[OC,C] needs in the layout. */
    size_t (*panel_weight_bytes)(exitrl_backend *be, int C, int OC);
    /* dst (panel_weight_bytes(C, OC) bytes) = w[OC,C] (act dtype) in the layout. */
    void (*panel_weight)(exitrl_backend *be, void *dst, const void *w, int C, int OC);
    /* matmul_forward with the weight given as panel_weight's copy of it; the same contract
     * otherwise, results equal to matmul_forward's up to float rounding. */
    void (*matmul_forward_panels)(exitrl_backend *be, void *out, void *pre_gelu, const void *inp,
                                  const void *wpanels, const void *bias, int N, int C, int OC);

    /* ---- rollouts (KV-cache generation) ----
     * The KV cache of one layer is a plain [B, S, C] array per k and v (S = the batch's total
     * length capacity). tok_buf[B, S] holds each sequence's prompt and generated tokens; pos[B] is
     * the position of each sequence's newest token; done[B] is nonzero once a sequence stopped. */
    /* Optional (0, the default: no limit). The bytes of KV cache that a rollout's decode steps
     * should keep in the caches: a batch whose KV cache (at its actual length) is larger decodes
     * in chunks of the largest multiple of 64 sequences that fits, and of 64 where not even 64
     * fit (the results do not depend on it: sampling is keyed by each sequence's index). */
    size_t decode_cache_bytes;
    /* out[b] = wte[tok_buf[b*S + pos[b]]] + wpe[pos[b]] for b < B. */
    void (*encoder_forward_at)(exitrl_backend *be, void *out, const int *tok_buf, const int *pos,
                               int S, const void *wte, const void *wpe, int B, int C);
    /* For b < B, t < T: kcache[b, start+t] = k of qkv[b, t], vcache likewise, with start = 0 when
     * start_pos is NULL (prefill) or start_pos[b] (a decode step, T = 1). */
    void (*kv_cache_store)(exitrl_backend *be, void *kcache, void *vcache, const void *qkv,
                           const int *start_pos, int B, int T, int S, int C);
    /* One decode step: out[b] = causal attention of q = qkv[b, 0:C] over cache positions
     * 0..pos[b] (inclusive) of sequence b, same scale as attention_forward. */
    void (*attention_decode)(exitrl_backend *be, void *out, const void *qkv, const void *kcache,
                             const void *vcache, const int *pos, int B, int S, int C, int NH);
    /* dst[b, :] = src[idx[b], :] for b < B (rows of C act values). */
    void (*gather_rows)(exitrl_backend *be, void *dst, const void *src, const int *idx, int B, int C);
    /* emb[b, :] += hidden[b, :] (fp32 += act) for every b with done[b] == 0. */
    void (*hidden_accumulate)(exitrl_backend *be, float *emb, const void *hidden, const int *done,
                              int B, int C);
    /* Samples the next token of every sequence with done[b] == 0 from logits[b, :V] (row stride Vp)
     * and appends it: p = pos[b] + 1; tok_buf[b*S + p] = token; logprob_buf[b*S + p] = its log-prob
     * under softmax(logits / temperature) over all V tokens (temperature 1 when greedy); pos[b] = p;
     * done[b] = 1 when the token is eos or p + 1 >= limit[b]. The random number of sequence b at
     * position p is Philox4x32-10 keyed by seed with counter (p, seq_offset + b, 0, 0) (kernels/philox.h),
     * so CPU and CUDA draw the same numbers. See exitrl_sampling for the filtering rules. */
    void (*sample_step)(exitrl_backend *be, const void *logits, const struct exitrl_sampling *sp,
                        int *tok_buf, float *logprob_buf, int *pos, int *done, const int *limit,
                        int B, int S, int V, int Vp, int seq_offset);

    /* ---- RL (GRPO / ExIt) ---- */
    /* Group advantages for P groups of G rewards (one launch). With m_g the group mean:
     *   scale_mode GROUP: A_i = (r_i - m_g) / (s_g + eps), s_g the Bessel-corrected group std;
     *   scale_mode BATCH: A_i = (r_i - m_g) / (s + eps), s the Bessel-corrected std of all P*G rewards;
     *   scale_mode NONE:  A_i = r_i - m_g (Dr. GRPO).
     * Then, when div_scale != NULL, A_i *= div_scale[i]. G == 1 gives A = 0. */
    void (*group_advantage)(exitrl_backend *be, float *adv, const float *rewards,
                            const float *div_scale, int P, int G, int scale_mode, float eps);
    /* Diversity scale of each completion within its group (docs/DESIGN.md §5): with e_i = emb[i, :C] and
     * e_bar the group's mean embedding, dist_i = ||e_i - e_bar||_2 and
     *   d_i = dist_i / (max_j dist_j - min_j dist_j)   over the group,
     * and d_i = 1 for the whole group when max - min <= 1e-4 * max (all about equally far, which
     * includes every group of 2 and all-zero distances): a relative guard, so rounding noise in the
     * range never turns into a huge scale. */
    void (*diversity_scale)(exitrl_backend *be, float *d, const float *emb, int P, int G, int C);
    /* Learnability score of each group: S_g = 4 * population variance of its G rewards (in [0,1]
     * for rewards in [0,1]; 4p(1-p) for 0/1 rewards). Then, for the expansions to keep, writes
     * chosen[i] (i < P*G) = 1 or 0 by mode: ALL keeps every completion; BEST the highest reward
     * of each group (ties: lowest index); TOPK the k highest of each group (ties: lowest index);
     * RANDOM k of each group uniformly: member j of group g draws philox_uniform-style bits from
     * Philox keyed by seed with counter (j, g, 1, 0), and the k smallest draws are kept (ties: lowest j).
     * k >= G keeps the whole group (TOPK, RANDOM). Only scores and chosen cross to the host. */
    void (*score_groups)(exitrl_backend *be, float *scores, int *chosen, const float *rewards,
                         int P, int G, int mode, int k, uint64_t seed);
    /* Fused GRPO classifier: for each row n with target >= 0, with lp = log softmax(logits[n] *
     * inv_temp)[target] over the V real columns:
     *   rho = exp(lp - lp_old[n]);  A = adv[n];  rho_c = clamp(rho, 1 - eps_low, 1 + eps_high)
     *   k3 = exp(lp_ref[n] - lp) - (lp_ref[n] - lp) - 1            (0 when lp_ref == NULL)
     *   loss_tok[n] = -min(rho * A, rho_c * A) + beta * k3
     * The objective is sum_n weight[n] * loss_tok[n]; logits are overwritten IN PLACE by its
     * gradient w.r.t. the (unscaled) logits: with g = d loss_tok / d lp =
     *   -rho * A * [rho * A <= rho_c * A]  +  beta * (1 - exp(lp_ref - lp)),
     * dlogits[n, v] = weight[n] * g * inv_temp * ([v == target] - softmax[v]) (softmax of the
     * scaled logits), 0 for v >= V and for
     * rows with target < 0. Per-row outputs (fp32, may be NULL): lp_new[n] = lp, loss_out[n] =
     * loss_tok[n], clipped[n] = 1 when the clipped branch was taken with rho outside the range.
     * Rows with target < 0 get lp_new = loss_out = clipped = 0. */
    void (*grpo_classifier)(exitrl_backend *be, void *logits, const int *targets,
                            const float *lp_old, const float *lp_ref, const float *adv,
                            const float *weight, float inv_temp, float eps_low, float eps_high,
                            float beta, float *lp_new, float *loss_out, float *clipped, int N,
                            int V, int Vp);

    /* ---- optimizer ----
     * The values that change from step to step live in backend memory, in a float[EXITRL_STEP_NVALS]
     * ("step values"), so that a whole training step captured in a graph reads the current step's
     * values when it is replayed: the host writes lr, t and the bias corrections before the step
     * (exitrl_step_vals_set + upload), grad_norm_clip writes the norm and the clip scale on the
     * device, and adamw_update reads them there. Nothing in the step waits for the host. */
    /* Global norm of n fp32 values: vals[NORM] = sqrt(sum x^2) (accumulated in fp64), vals[SCALE] =
     * max_norm / norm when max_norm > 0 and norm > max_norm, else 1; 0 when the norm is not finite
     * (the step then leaves the weights unchanged apart from weight decay and the caller decides).
     * Does not synchronise; read vals with download. */
    void (*grad_norm_clip)(exitrl_backend *be, float *vals, const float *x, size_t n, float max_norm);
    /* AdamW on n parameters, with lr, bias corrections and clip scale from the step values:
     * g = grads * vals[SCALE]; m, v updated; master -= vals[LR] * (mhat / (sqrt(vhat) + eps) +
     * weight_decay * master) with mhat = m / vals[BC1], vhat = v / vals[BC2]; then params_act =
     * act(master). params_act may equal master when act_dtype is F32. Backends that round the bf16
     * copy stochastically key their random bits by (vals[T], the number of adamw_update calls since
     * the last grad_norm_clip, index), so a replayed step draws the same bits as an eager one. */
    void (*adamw_update)(exitrl_backend *be, float *master, void *params_act, const float *grads,
                         float *m, float *v, size_t n, const float *vals, float beta1, float beta2,
                         float eps, float weight_decay);

    /* ---- graphs (optional; NULL on backends without them, e.g. the CPU) ----
     * graph_capture_begin starts recording the ops issued next instead of running them;
     * graph_capture_end returns the recorded sequence (NULL with a message on failure), which
     * graph_launch replays with the same pointers and sizes. Captured ops must not allocate, copy
     * to or from the host, or synchronise. */
    int (*graph_capture_begin)(exitrl_backend *be);
    void *(*graph_capture_end)(exitrl_backend *be);
    void (*graph_launch)(exitrl_backend *be, void *graph);
    void (*graph_destroy)(exitrl_backend *be, void *graph);

    /* ---- collectives across processes (optional; NULL on backends without them, e.g. the CPU,
     * whose gradients host/dist sums through host memory with MPI) ----
     * Data parallelism (host/dist/dist.h): one rank makes an id (comm_unique_id, into
     * id[EXITRL_COMM_ID_BYTES]), the host broadcasts it, and every rank joins the communicator of
     * `size` ranks as `rank` (comm_init, collective: every rank calls it). allreduce_sum_f32
     * replaces buf[0..n) (backend memory) by its sum over the ranks, on the backend's stream, in the
     * order of the ops before it. Each returns 0, or -1 with a reason in why. */
    int (*comm_unique_id)(exitrl_backend *be, void *id, char *why, size_t why_len);
    int (*comm_init)(exitrl_backend *be, const void *id, int rank, int size, char *why, size_t why_len);
    int (*allreduce_sum_f32)(exitrl_backend *be, float *buf, size_t n, char *why, size_t why_len);

    /* Releases the backend's context and the struct itself. */
    void (*destroy)(exitrl_backend *be);
};

/* The CPU reference backend. Always available. */
exitrl_backend *exitrl_backend_cpu_create(void);

/* Writes one line into buf (NUL-terminated) saying which BLAS the CPU backend's matmuls use, as the
 * build found it (CMake: the library's path, or "none" with the reason: then the plain C loops run,
 * slower), and for OpenBLAS its run-time configuration and the CPU core whose kernels it chose. */
void exitrl_cpu_blas_info(char *buf, size_t len);

/* Call first in main (argv as main received it). When OpenBLAS fell back to its generic SSE3
 * kernels on a CPU with AVX2+FMA or AVX-512 (it does on CPU models it does not know, as in VMs; 2.3x
 * slower on the tiny model's pretraining), sets OPENBLAS_CORETYPE to Haswell or SkylakeX and
 * re-executes the program, since OpenBLAS reads it only when loaded; child processes (the benches'
 * PyTorch peers) inherit it. Returns without doing anything when OPENBLAS_CORETYPE is already set
 * (the user's choice wins), when OpenBLAS chose a real core, without OpenBLAS, or when the exec
 * fails. exitrl_cpu_blas_info then says that exitrl set it. */
void exitrl_cpu_blas_choose_core(char **argv);

/* The CUDA backend; NULL (with a reason in `why`, if non-NULL) when it was not compiled in or no
 * GPU is present. fp32_mode selects fp32 activations for tight parity tests. */
exitrl_backend *exitrl_backend_cuda_create(int device, int fp32_mode, char *why, size_t why_len);

/* True when the CUDA backend is compiled in and at least one GPU answers. */
int exitrl_cuda_available(void);

/* Writes a human-readable report into buf (NUL-terminated): CUDA runtime and driver versions,
 * cuBLAS/cuBLASLt and cuDNN versions, and each device (name, compute capability, SMs, memory); or
 * a line saying the CUDA backend is not compiled in. Works without a GPU. */
void exitrl_cuda_info(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
