/* Token + position embedding, forward and backward.
 *
 * The backward is deterministic (no floating-point atomics): positions are stably sorted by token
 * id (CUB radix sort), the sorted list is cut into chunks of ENC_CHUNK entries, and each chunk sums
 * the dout rows of each run of equal tokens in order. A run that lies inside one chunk is added to
 * dwte directly (no other chunk holds that token); a run that crosses chunk boundaries leaves one
 * partial sum per chunk, which a second kernel adds up in chunk order. A token used thousands of
 * times therefore costs count/ENC_CHUNK serial steps, not count. */
#include <cub/device/device_radix_sort.cuh>

#include "cuda_common.cuh"

#define ENC_CHUNK 64
#define ENC_THREADS 128

template <typename act_t>
__global__ void encoder_forward_kernel(act_t *out, const int *tok, const act_t *wte, const act_t *wpe,
                                       int T, int C, size_t total, int *dev_err) {
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t n = idx / C;
        int c = (int)(idx % C), t = (int)(n % T);
        int id = tok[n];
        if (id < 0) {
            report_bad_input(dev_err, CUDA_BAD_TOKEN, (int)n, id, 0);
            continue;
        }
        out[idx] = from_f32<act_t>(to_f32(wte[(size_t)id * C + c]) + to_f32(wpe[(size_t)t * C + c]));
    }
}

extern "C" void cuda_encoder_forward(exitrl_backend *be, void *out, const int *tok, const void *wte,
                                     const void *wpe, int B, int T, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || T < 1 || C < 1) CUDA_UNSUPPORTED("encoder_forward: B=%d T=%d C=%d must be positive", B, T, C);
    size_t total = (size_t)B * T * C;
    unsigned blocks = cuda_blocks_for(total, 256);
    if (ctx->fp32)
        encoder_forward_kernel<float><<<blocks, 256, 0, ctx->stream>>>(
            (float *)out, tok, (const float *)wte, (const float *)wpe, T, C, total, ctx->dev_err);
    else
        encoder_forward_kernel<bf16><<<blocks, 256, 0, ctx->stream>>>(
            (bf16 *)out, tok, (const bf16 *)wte, (const bf16 *)wpe, T, C, total, ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "encoder_forward");
}

/* positions[n] = n, and the token ids checked (a negative id would index outside dwte). */
__global__ void encoder_iota_kernel(int *positions, const int *tok, int N, int *dev_err) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    positions[n] = n;
    if (tok[n] < 0) report_bad_input(dev_err, CUDA_BAD_TOKEN, n, tok[n], 0);
}

/* dwpe[t, c] += sum over b of dout[b, t, c]: one thread per (t, c), batch summed in order. */
template <typename act_t>
__global__ void encoder_wpe_grad_kernel(float *dwpe, const act_t *dout, int B, int T, int C) {
    size_t tc = (size_t)T * C;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < tc;
         idx += (size_t)gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int b = 0; b < B; b++) acc += to_f32(dout[(size_t)b * tc + idx]);
        dwpe[idx] += acc;
    }
}

/* One block column per chunk of sorted entries, one thread per channel. partial holds two slots
 * per chunk: [0] the chunk's first run when it began in an earlier chunk, [1] its last run when it
 * goes on into the next chunk (and began in this one). */
template <typename act_t>
__global__ void encoder_wte_chunk_kernel(float *dwte, float *partial, const act_t *dout,
                                         const int *sorted_tok, const int *sorted_pos, int N, int C) {
    int chunk = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int s = chunk * ENC_CHUNK, e = min(N, s + ENC_CHUNK) - 1;
    bool first_run_began_before = s > 0 && sorted_tok[s - 1] == sorted_tok[s];
    bool first_run = true;
    float acc = 0.0f;
    for (int i = s; i <= e; i++) {
        int id = sorted_tok[i];
        acc += to_f32(dout[(size_t)sorted_pos[i] * C + c]);
        if (i < e && sorted_tok[i + 1] == id) continue;
        /* The run of `id` ends at i within this chunk. */
        bool goes_on = i == e && e + 1 < N && sorted_tok[e + 1] == id;
        if (first_run && first_run_began_before)
            partial[((size_t)chunk * 2 + 0) * C + c] = acc;
        else if (goes_on)
            partial[((size_t)chunk * 2 + 1) * C + c] = acc;
        else if (id >= 0)
            dwte[(size_t)id * C + c] += acc;
        acc = 0.0f;
        first_run = false;
    }
}

/* For each chunk where a run begins and crosses into the next chunk: adds that run's partial sums
 * in chunk order and accumulates the total into dwte. */
__global__ void encoder_wte_merge_kernel(float *dwte, const float *partial, const int *sorted_tok,
                                         int N, int C) {
    int chunk = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int s = chunk * ENC_CHUNK, e = min(N, s + ENC_CHUNK) - 1;
    if (e + 1 >= N) return;
    int id = sorted_tok[e];
    if (sorted_tok[e + 1] != id) return;          /* the last run ends inside this chunk */
    if (s > 0 && sorted_tok[s - 1] == id) return; /* it began earlier: another chunk owns it */
    float acc = partial[((size_t)chunk * 2 + 1) * C + c];
    for (int k = chunk + 1;; k++) {
        acc += partial[((size_t)k * 2 + 0) * C + c];
        int ek = min(N, (k + 1) * ENC_CHUNK) - 1;
        if (ek + 1 >= N || sorted_tok[ek + 1] != id) break;
    }
    if (id >= 0) dwte[(size_t)id * C + c] += acc;
}

template <typename act_t>
static void encoder_backward_launch(cuda_ctx *ctx, float *dwte, float *dwpe, const act_t *dout,
                                    const int *tok, int B, int T, int C) {
    int N = B * T;
    int chunks = (N + ENC_CHUNK - 1) / ENC_CHUNK;

    /* Scratch layout: sorted_tok[N] | positions[N] | sorted_pos[N] | CUB temp storage. */
    size_t sort_temp = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, sort_temp, (const int *)NULL, (int *)NULL,
                                               (const int *)NULL, (int *)NULL, N, 0, 32,
                                               ctx->stream));
    size_t ints = ((size_t)3 * N + 63) & ~(size_t)63; /* keeps the temp storage 256-byte aligned */
    char *scratch = (char *)cuda_scratch(ctx, SCRATCH_ENC_SORT, ints * sizeof(int) + sort_temp);
    int *sorted_tok = (int *)scratch, *positions = sorted_tok + N, *sorted_pos = positions + N;
    void *temp = scratch + ints * sizeof(int);
    float *partial = (float *)cuda_scratch(ctx, SCRATCH_ENC_PARTIALS, (size_t)chunks * 2 * C * sizeof(float));

    encoder_iota_kernel<<<(N + 255) / 256, 256, 0, ctx->stream>>>(positions, tok, N, ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "encoder_backward (iota)");
    /* LSD radix sort is stable: equal tokens keep position order, so sums are reproducible. */
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, sort_temp, tok, sorted_tok, positions, sorted_pos,
                                               N, 0, 32, ctx->stream));

    dim3 grid(chunks, (C + ENC_THREADS - 1) / ENC_THREADS);
    encoder_wte_chunk_kernel<act_t><<<grid, ENC_THREADS, 0, ctx->stream>>>(dwte, partial, dout, sorted_tok,
                                                                           sorted_pos, N, C);
    CUDA_AFTER_LAUNCH(ctx, "encoder_backward (wte chunks)");
    encoder_wte_merge_kernel<<<grid, ENC_THREADS, 0, ctx->stream>>>(dwte, partial, sorted_tok, N, C);
    CUDA_AFTER_LAUNCH(ctx, "encoder_backward (wte merge)");

    size_t tc = (size_t)T * C;
    encoder_wpe_grad_kernel<act_t><<<cuda_blocks_for(tc, 256), 256, 0, ctx->stream>>>(dwpe, dout, B, T, C);
    CUDA_AFTER_LAUNCH(ctx, "encoder_backward (wpe)");
}

extern "C" void cuda_encoder_backward(exitrl_backend *be, float *dwte, float *dwpe, const void *dout,
                                      const int *tok, int B, int T, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || T < 1 || C < 1 || (size_t)B * T > (size_t)1 << 30)
        CUDA_UNSUPPORTED("encoder_backward: B=%d T=%d C=%d (need positive sizes, B*T <= 2^30)", B, T, C);
    if (ctx->fp32)
        encoder_backward_launch<float>(ctx, dwte, dwpe, (const float *)dout, tok, B, T, C);
    else
        encoder_backward_launch<bf16>(ctx, dwte, dwpe, (const bf16 *)dout, tok, B, T, C);
}
