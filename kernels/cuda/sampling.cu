/* sample_step (contract and filtering rules in ops.h, struct exitrl_sampling): one block per
 * sequence. The softmax of the tempered logits lives in shared memory; top-k / top-p rank the
 * tokens with a bitonic sort (probability descending, id ascending), and the draw walks the kept
 * tokens in id order exactly as the CPU reference does, with the same Philox uniform
 * (kernels/philox.h), so both backends pick the same token unless the two softmaxes differ in the
 * last bits right at a boundary.
 *
 * Shared memory bounds the vocabulary of the non-greedy paths: V <= SAMPLE_MAX_V (greedy has no
 * limit); larger vocabularies are a clear error. */
#include <math.h>

#include "philox.h"
#include "cuda_common.cuh"

#define SAMPLE_THREADS 256
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define SAMPLE_MAX_V 8192

__device__ __forceinline__ bool ranks_before(float pa, int ia, float pb, int ib) {
    return pa > pb || (pa == pb && ia < ib);
}

template <typename act_t>
__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_step_kernel(const act_t *logits, struct exitrl_sampling sp, int *tok_buf, float *logprob_buf, int *pos,
                   int *done, const int *limit, int S, int V, int Vp, int seq_offset, int filtered, int n2,
                   int *dev_err) {
    extern __shared__ float smem[];
    __shared__ float red[SAMPLE_WARPS];
    __shared__ int red_id[SAMPLE_WARPS];
    __shared__ int sh_kept_n;
    int b = blockIdx.x, tid = threadIdx.x;
    if (done[b]) return; /* block-uniform */
    int p = pos[b] + 1;
    if (p < 1 || p >= S) {
        if (tid == 0) report_bad_input(dev_err, CUDA_BAD_POSITION, b, p, S);
        return;
    }
    const act_t *row = logits + (size_t)b * Vp;
    int chosen = 0;
    float logprob = 0.0f;

    if (sp.greedy) {
        float best = -INFINITY;
        int best_id = 0x7fffffff;
        for (int v = tid; v < V; v += SAMPLE_THREADS) {
            float x = to_f32(row[v]);
            if (x > best) { /* v increases, so an equal value never has a lower id here */
                best = x;
                best_id = v;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ob = __shfl_xor_sync(0xffffffffu, best, o);
            int oi = __shfl_xor_sync(0xffffffffu, best_id, o);
            if (ranks_before(ob, oi, best, best_id)) {
                best = ob;
                best_id = oi;
            }
        }
        if (tid % 32 == 0) {
            red[tid / 32] = best;
            red_id[tid / 32] = best_id;
        }
        __syncthreads();
        best = red[0];
        best_id = red_id[0];
        for (int w = 1; w < SAMPLE_WARPS; w++)
            if (ranks_before(red[w], red_id[w], best, best_id)) {
                best = red[w];
                best_id = red_id[w];
            }
        float s = 0.0f;
        for (int v = tid; v < V; v += SAMPLE_THREADS) s += __expf(to_f32(row[v]) - best);
        float sum = block_sum<SAMPLE_THREADS>(s, red);
        chosen = best_id;
        logprob = -logf(sum); /* logits[best] - logsumexp */
    } else {
        float *prob = smem;
        float *sort_p = prob + V;
        int *sort_id = (int *)(sort_p + n2);
        unsigned char *keep = (unsigned char *)(sort_id + n2);
        float inv_t = 1.0f / sp.temperature;
        float mx = -INFINITY;
        for (int v = tid; v < V; v += SAMPLE_THREADS) mx = fmaxf(mx, to_f32(row[v]) * inv_t);
        mx = block_max<SAMPLE_THREADS>(mx, red);
        float s = 0.0f;
        for (int v = tid; v < V; v += SAMPLE_THREADS) {
            float e = __expf(to_f32(row[v]) * inv_t - mx);
            prob[v] = e;
            s += e;
        }
        float sum = block_sum<SAMPLE_THREADS>(s, red);
        float lse = mx + logf(sum);
        for (int v = tid; v < V; v += SAMPLE_THREADS) prob[v] /= sum;
        __syncthreads();

        if (filtered) {
            for (int i = tid; i < n2; i += SAMPLE_THREADS) {
                sort_p[i] = i < V ? prob[i] : -1.0f; /* padding ranks after every real token */
                sort_id[i] = i;
            }
            __syncthreads();
            for (int k = 2; k <= n2; k <<= 1)
                for (int j = k >> 1; j > 0; j >>= 1) {
                    for (int i = tid; i < n2; i += SAMPLE_THREADS) {
                        int ixj = i ^ j;
                        if (ixj <= i) continue;
                        bool swap = (i & k) == 0 ? ranks_before(sort_p[ixj], sort_id[ixj], sort_p[i], sort_id[i])
                                                 : ranks_before(sort_p[i], sort_id[i], sort_p[ixj], sort_id[ixj]);
                        if (swap) {
                            float tp = sort_p[i];
                            sort_p[i] = sort_p[ixj];
                            sort_p[ixj] = tp;
                            int ti = sort_id[i];
                            sort_id[i] = sort_id[ixj];
                            sort_id[ixj] = ti;
                        }
                    }
                    __syncthreads();
                }
            if (tid == 0) {
                /* Keep rank r while fewer than top_k ranked before it and the mass before it < top_p. */
                float before = 0.0f;
                int kept_n = 0;
                for (int r = 0; r < V; r++) {
                    if ((sp.top_k > 0 && r >= sp.top_k) || before >= sp.top_p) break;
                    before += sort_p[r];
                    kept_n++;
                }
                sh_kept_n = kept_n;
            }
            for (int v = tid; v < V; v += SAMPLE_THREADS) keep[v] = 0;
            __syncthreads();
            for (int r = tid; r < sh_kept_n; r += SAMPLE_THREADS) keep[sort_id[r]] = 1;
            __syncthreads();
        }
        if (tid == 0) {
            /* The kept mass and the walk, in id order: the CPU reference's float sums. */
            float kept_mass = 0.0f;
            if (filtered) {
                for (int r = 0; r < sh_kept_n; r++) kept_mass += sort_p[r]; /* rank order, as the CPU */
            } else {
                for (int v = 0; v < V; v++) kept_mass += prob[v];
            }
            float u = philox_uniform(sp.seed, (uint32_t)(seq_offset + b), (uint32_t)p);
            float target = u * kept_mass, run = 0.0f;
            int last_kept = 0;
            chosen = -1;
            for (int v = 0; v < V; v++) {
                if ((filtered && !keep[v]) || prob[v] <= 0.0f) continue;
                last_kept = v;
                run += prob[v];
                if (run > target) {
                    chosen = v;
                    break;
                }
            }
            if (chosen < 0) chosen = last_kept; /* rounding left the walk short */
            logprob = to_f32(row[chosen]) * inv_t - lse;
        }
    }
    if (tid == 0) {
        tok_buf[(size_t)b * S + p] = chosen;
        logprob_buf[(size_t)b * S + p] = logprob;
        pos[b] = p;
        if (chosen == sp.eos || p + 1 >= limit[b]) done[b] = 1;
    }
}

template <typename act_t>
static void sample_step_launch(cuda_ctx *ctx, const act_t *logits, const struct exitrl_sampling *sp, int *tok_buf,
                               float *logprob_buf, int *pos, int *done, const int *limit, int B, int S, int V, int Vp,
                               int seq_offset) {
    int filtered = !sp->greedy && (sp->top_k > 0 || sp->top_p < 1.0f);
    int n2 = 1;
    while (n2 < V) n2 <<= 1;
    size_t smem = 0;
    if (!sp->greedy) smem = (size_t)V * sizeof(float) + (filtered ? (size_t)n2 * (sizeof(float) + sizeof(int)) + V : 0);
    static size_t configured = 0;
    if (smem > configured) {
        if (smem > ctx->max_smem_optin)
            CUDA_UNSUPPORTED("sample_step: V=%d needs %zu bytes of shared memory; %s allows %zu", V, smem,
                             ctx->device_name, ctx->max_smem_optin);
        CUDA_CHECK(cudaFuncSetAttribute(sample_step_kernel<act_t>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)smem));
        configured = smem;
    }
    sample_step_kernel<act_t><<<B, SAMPLE_THREADS, smem, ctx->stream>>>(logits, *sp, tok_buf, logprob_buf, pos, done,
                                                                        limit, S, V, Vp, seq_offset, filtered, n2,
                                                                        ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "sample_step");
}

extern "C" void cuda_sample_step(exitrl_backend *be, const void *logits, const struct exitrl_sampling *sp,
                                 int *tok_buf, float *logprob_buf, int *pos, int *done, const int *limit, int B, int S,
                                 int V, int Vp, int seq_offset) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || S < 2 || V < 1 || Vp < V)
        CUDA_UNSUPPORTED("sample_step: B=%d S=%d V=%d Vp=%d (need B >= 1, S >= 2, 1 <= V <= Vp)", B, S, V, Vp);
    if (!sp->greedy) {
        if (!(sp->temperature > 0.0f) || isinf(sp->temperature))
            CUDA_UNSUPPORTED("sample_step: temperature %g must be positive and finite", sp->temperature);
        if (!(sp->top_p > 0.0f && sp->top_p <= 1.0f))
            CUDA_UNSUPPORTED("sample_step: top_p %g must be in (0, 1]", sp->top_p);
        if (sp->top_k < 0) CUDA_UNSUPPORTED("sample_step: top_k %d must be >= 0", sp->top_k);
        if (V > SAMPLE_MAX_V)
            CUDA_UNSUPPORTED("sample_step: V=%d exceeds %d, the shared-memory limit of the sampling kernel "
                             "(greedy decoding has none)",
                             V, SAMPLE_MAX_V);
    }
    if (ctx->fp32)
        sample_step_launch<float>(ctx, (const float *)logits, sp, tok_buf, logprob_buf, pos, done, limit, B, S, V, Vp,
                                  seq_offset);
    else
        sample_step_launch<bf16>(ctx, (const bf16 *)logits, sp, tok_buf, logprob_buf, pos, done, limit, B, S, V, Vp,
                                 seq_offset);
}
