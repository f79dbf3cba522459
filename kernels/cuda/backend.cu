/* The CUDA backend: device selection, the context (stream, cuBLASLt handle and workspace, scratch),
 * memory, synchronisation, dtype conversion, CUDA graphs and error reporting. The ops live in one
 * file per family, named like their CPU references in kernels/cpu, entry points declared in
 * cuda_backend.h:
 *   encoder.cu     encoder_forward / backward
 *   layernorm.cu   layernorm_forward, residual_layernorm_forward, layernorm_backward
 *   matmul.cu      matmul_forward / backward (cuBLASLt)
 *   attention.cu   attention_forward / backward: chooses the implementation of each call among
 *                  attention_mma.cu (tensor cores), attention_simt.cu (CUDA cores) and
 *                  attention_cudnn.cu (cuDNN; its graph building in cudnn_graph.cu, and
 *                  attention_cudnn_stub.cu in a build without cuDNN)
 *   attention_packed.cu  attention_forward_packed / backward_packed (the shared-prefix GRPO rows)
 *   classifier.cu  classifier_forward_backward, grpo_classifier
 *   decode.cu      the rollout ops: encoder_forward_at, kv_cache_store, attention_decode,
 *                  gather_rows, hidden_accumulate
 *   sampling.cu    sample_step
 *   rl.cu          group_advantage, diversity_scale, score_groups
 *   grad_norm.cu   grad_norm_clip
 *   adamw.cu       adamw_update
 * Shared device helpers are in cuda_common.cuh.
 *
 * Environment, read when the backend is created:
 *   EXITRL_ATTENTION=flash|simt|cudnn  attention_forward/backward implementation (attention.cu):
 *                                 flash (default: our flash attention, on tensor cores in bf16,
 *                                 attention_mma.cu, and on CUDA cores in the fp32 mode,
 *                                 attention_simt.cu), simt (the CUDA-core kernels in bf16 too) or
 *                                 cudnn (cuDNN's fused attention, attention_cudnn.cu; bf16 only,
 *                                 needs a build with cuDNN; any reason it cannot run is reported
 *                                 here, at create time)
 *   EXITRL_ATTENTION_STRICT=0|1   1: a shape cuDNN refuses at run time stops the program (the
 *                                 tests); 0 (default): it runs the flash kernels, named on stderr
 *   EXITRL_STOCHASTIC_ROUNDING=0|1
 *   EXITRL_CUDA_SYNC_EACH_OP=0|1  debugging: name the op whose kernel faulted
 *   EXITRL_CUDA_NO_GRAPHS=0|1     1: no CUDA graphs; the training and decode steps run op by op */
#ifdef EXITRL_HAVE_CUDNN
#include <cudnn.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

/* cuBLASLt workspace: 32 MiB is what cuBLAS asks for on Hopper; smaller GPUs use less of it. */
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)
/* Oldest GPU the build targets: bf16 arithmetic and the compute_80 PTX need sm_80. */
#define MIN_CC_MAJOR 8

extern "C" void cuda_fatal(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "exitrl: cuda: %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    exit(1);
}

extern "C" const char *cuda_cublas_status_text(cublasStatus_t s) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s: %s", cublasGetStatusName(s), cublasGetStatusString(s));
    return buf;
}

extern "C" unsigned cuda_blocks_for(size_t n, unsigned threads) {
    size_t blocks = (n + threads - 1) / threads;
    if (blocks < 1) blocks = 1;
    /* Grid-stride loops cover the rest; this bound keeps gridDim.x legal for any n. */
    if (blocks > ((size_t)1 << 20)) blocks = (size_t)1 << 20;
    return (unsigned)blocks;
}

/* Reads the device-side bad-input flag (the stream must be idle) and makes any finding fatal. */
static void check_bad_input(cuda_ctx *ctx) {
    int e[4];
    CUDA_CHECK(cudaMemcpyAsync(e, ctx->dev_err, sizeof e, cudaMemcpyDeviceToHost, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    switch (e[0]) {
    case CUDA_BAD_NONE:
        return;
    case CUDA_BAD_TOKEN:
        cuda_fatal(__FILE__, __LINE__, "encoder: token id %d at position %d is negative", e[2], e[1]);
    case CUDA_BAD_TARGET:
        cuda_fatal(__FILE__, __LINE__, "classifier: targets[%d] = %d is not below V = %d", e[1], e[2],
                   e[3]);
    case CUDA_BAD_POSITION:
        cuda_fatal(__FILE__, __LINE__, "rollout: sequence %d reaches position %d, outside its cache of %d",
                   e[1], e[2], e[3]);
    case CUDA_BAD_INDEX:
        cuda_fatal(__FILE__, __LINE__, "gather_rows: idx[%d] = %d is negative", e[1], e[2]);
    default:
        cuda_fatal(__FILE__, __LINE__, "internal error: unknown bad-input code %d", e[0]);
    }
}

extern "C" void cuda_after_launch(cuda_ctx *ctx, const char *op, const char *file, int line) {
    cudaError_t err = cudaGetLastError();
    /* A capturing stream must not be synchronised: faults of captured kernels surface at replay. */
    if (err == cudaSuccess && ctx->sync_each_op && !ctx->capturing) err = cudaStreamSynchronize(ctx->stream);
    if (err != cudaSuccess)
        cuda_fatal(file, line, "%s: kernel failed: %s: %s", op, cudaGetErrorName(err),
                   cudaGetErrorString(err));
}

extern "C" void *cuda_scratch(cuda_ctx *ctx, cuda_scratch_slot slot, size_t bytes) {
    if (bytes <= ctx->scratch_bytes[slot]) return ctx->scratch[slot];
    if (ctx->capturing)
        cuda_fatal(__FILE__, __LINE__,
                   "internal error: scratch slot %d must grow to %zu bytes during a CUDA graph capture "
                   "(the captured ops must run once uncaptured first, at the same sizes)",
                   (int)slot, bytes);
    /* Earlier kernels may still read the old buffer: wait for them before freeing it. */
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    if (ctx->scratch[slot]) CUDA_CHECK(cudaFree(ctx->scratch[slot]));
    ctx->scratch[slot] = NULL;
    ctx->scratch_bytes[slot] = 0;
    size_t rounded = (bytes + 255) & ~(size_t)255;
    cudaError_t err = cudaMalloc(&ctx->scratch[slot], rounded);
    if (err != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        cuda_fatal(__FILE__, __LINE__, "scratch allocation of %zu bytes failed: %s (%zu bytes free of %zu)",
                   rounded, cudaGetErrorString(err), free_b, total_b);
    }
    ctx->scratch_bytes[slot] = rounded;
    return ctx->scratch[slot];
}

/* ---- memory ---- */

static void *cu_alloc(exitrl_backend *be, size_t bytes) {
    cuda_ctx *ctx = CUDA_CTX(be);
    void *p = NULL;
    size_t n = bytes ? bytes : 1;
    cudaError_t err = cudaMalloc(&p, n);
    if (err != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError(); /* an out-of-memory error is not sticky: clear it */
        cudaMemGetInfo(&free_b, &total_b);
        fprintf(stderr,
                "exitrl: cuda: out of device memory: asked for %zu bytes, %zu bytes free of %zu "
                "on %s (%s)\n",
                bytes, free_b, total_b, ctx->device_name, cudaGetErrorString(err));
        return NULL;
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, n, ctx->stream));
    return p;
}

static void cu_free(exitrl_backend *be, void *p) {
    if (!p) return;
    CUDA_CHECK(cudaStreamSynchronize(CUDA_CTX(be)->stream));
    CUDA_CHECK(cudaFree(p));
}

static void cu_upload(exitrl_backend *be, void *dst, const void *host_src, size_t bytes) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    /* The caller may reuse host_src as soon as we return. */
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

static void cu_download(exitrl_backend *be, void *host_dst, const void *src, size_t bytes) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    check_bad_input(ctx);
}

static void cu_copy(exitrl_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, CUDA_CTX(be)->stream));
}

static void cu_zero(exitrl_backend *be, void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, CUDA_CTX(be)->stream));
}

static void cu_sync(exitrl_backend *be) {
    cuda_ctx *ctx = CUDA_CTX(be);
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    check_bad_input(ctx);
}

/* ---- dtype conversion ---- */

/* dst[i] = src[i] between fp32 and bf16 (to bf16: round to nearest even), grid-stride. */
template <typename dst_t, typename src_t> __global__ void convert_kernel(dst_t *dst, const src_t *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = from_f32<dst_t>(to_f32(src[i]));
}

/* n values from src to dst: a copy in the fp32 mode (both are fp32 then), else a conversion. */
template <typename dst_t, typename src_t>
static void convert(exitrl_backend *be, void *dst, const void *src, size_t n, const char *op) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (!n) return;
    if (ctx->fp32) {
        cu_copy(be, dst, src, n * sizeof(float));
        return;
    }
    convert_kernel<dst_t, src_t><<<cuda_blocks_for(n, 256), 256, 0, ctx->stream>>>((dst_t *)dst, (const src_t *)src, n);
    CUDA_AFTER_LAUNCH(ctx, op);
}

extern "C" void cuda_f32_to_act(exitrl_backend *be, void *dst, const float *src, size_t n) {
    convert<bf16, float>(be, dst, src, n, "f32_to_act");
}

extern "C" void cuda_act_to_f32(exitrl_backend *be, float *dst, const void *src, size_t n) {
    convert<float, bf16>(be, dst, src, n, "act_to_f32");
}

/* ---- CUDA graphs (ops.h "graphs") ---- */

typedef struct {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
} cuda_graph;

static int cu_graph_capture_begin(exitrl_backend *be) {
    cuda_ctx *ctx = CUDA_CTX(be);
    /* Thread-local mode: a call that is unsafe during capture (an allocation, a synchronisation)
     * made by this thread fails at once, naming itself, instead of producing a wrong graph. */
    cudaError_t err = cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) {
        cudaGetLastError();
        fprintf(stderr, "exitrl: cuda: cannot start a graph capture (%s); running the ops uncaptured\n",
                cudaGetErrorString(err));
        return -1;
    }
    ctx->capturing = 1;
    return 0;
}

static void *cu_graph_capture_end(exitrl_backend *be) {
    cuda_ctx *ctx = CUDA_CTX(be);
    ctx->capturing = 0;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t err = cudaStreamEndCapture(ctx->stream, &graph);
    if (err == cudaSuccess && graph) err = cudaGraphInstantiate(&exec, graph, 0);
    cuda_graph *g = err == cudaSuccess ? (cuda_graph *)malloc(sizeof *g) : NULL;
    if (!g) {
        fprintf(stderr, "exitrl: cuda: graph capture failed (%s); running the ops uncaptured\n",
                err != cudaSuccess ? cudaGetErrorString(err) : "out of host memory");
        cudaGetLastError();
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
        return NULL;
    }
    g->graph = graph;
    g->exec = exec;
    return g;
}

static void cu_graph_launch(exitrl_backend *be, void *graph) {
    cuda_ctx *ctx = CUDA_CTX(be);
    CUDA_CHECK(cudaGraphLaunch(((cuda_graph *)graph)->exec, ctx->stream));
    if (ctx->sync_each_op) cu_sync(be);
}

static void cu_graph_destroy(exitrl_backend *be, void *graph) {
    cuda_graph *g = (cuda_graph *)graph;
    if (!g) return;
    CUDA_CHECK(cudaStreamSynchronize(CUDA_CTX(be)->stream)); /* a replay may still be running */
    CUDA_CHECK(cudaGraphExecDestroy(g->exec));
    CUDA_CHECK(cudaGraphDestroy(g->graph));
    free(g);
}

/* ---- create / destroy ---- */

static void ctx_release(cuda_ctx *ctx) {
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    cuda_comm_release(ctx);
    cuda_matmul_plans_destroy(ctx);
    cuda_attention_cudnn_release(ctx);
    for (int i = 0; i < CUDA_NUM_SCRATCH; i++)
        if (ctx->scratch[i]) cudaFree(ctx->scratch[i]);
    if (ctx->lt_workspace) cudaFree(ctx->lt_workspace);
    if (ctx->dev_err) cudaFree(ctx->dev_err);
    if (ctx->lt) cublasLtDestroy(ctx->lt);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    free(ctx);
}

static void cu_destroy(exitrl_backend *be) {
    if (!be) return;
    ctx_release(CUDA_CTX(be));
    free(be);
}

/* Parses a 0/1 environment switch; returns -1 (with a reason) for any other value. */
static int env_flag(const char *name, int *out, char *why, size_t why_len) {
    const char *v = getenv(name);
    *out = 0;
    if (!v || !*v || strcmp(v, "0") == 0) return 0;
    if (strcmp(v, "1") == 0) {
        *out = 1;
        return 0;
    }
    snprintf(why, why_len, "%s='%s' (expected 0 or 1)", name, v);
    return -1;
}

/* A trivial launch: proves the binary holds code this GPU can run before any op needs it. */
__global__ void probe_kernel(int *flag) { flag[0] = 0; }

static void set_why(char *why, size_t why_len, const char *fmt, ...) {
    if (!why || !why_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* Appends printf-style text to buf[len] at *used, never past the end. */
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...) {
    if (*used + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n > 0) *used += (size_t)n < len - *used ? (size_t)n : len - *used - 1;
}

extern "C" void exitrl_cuda_info(char *buf, size_t len) {
    if (!buf || !len) return;
    size_t used = 0;
    buf[0] = 0;
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    char driver_text[32] = "none", dnn_text[32] = "not linked";
    if (driver) snprintf(driver_text, sizeof driver_text, "%d.%d", driver / 1000, driver % 1000 / 10);
#ifdef EXITRL_HAVE_CUDNN
    size_t dnn = cudnnGetVersion();
    snprintf(dnn_text, sizeof dnn_text, "%zu.%zu.%zu", dnn / 10000, dnn % 10000 / 100, dnn % 100);
#endif
    append(buf, len, &used, "CUDA backend: runtime %d.%d, driver %s, cuBLASLt %zu, cuDNN %s\n", runtime / 1000,
           runtime % 1000 / 10, driver_text, cublasLtGetVersion(), dnn_text);
    {
        char why[512];
        if (cuda_attention_cudnn_available(why, sizeof why))
            append(buf, len, &used, "  attention: flash (default), simt, cudnn (EXITRL_ATTENTION=cudnn, bf16 only)\n");
        else
            append(buf, len, &used, "  attention: flash (default), simt; cudnn unavailable: %s\n", why);
    }
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        append(buf, len, &used, "  no usable GPU: %s\n", cudaGetErrorString(err));
        return;
    }
    if (count == 0) append(buf, len, &used, "  no GPU present\n");
    for (int d = 0; d < count; d++) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) {
            cudaGetLastError();
            append(buf, len, &used, "  device %d: properties unavailable\n", d);
            continue;
        }
        append(buf, len, &used, "  device %d: %s, compute capability %d.%d, %d SMs, %.1f GiB%s\n", d, prop.name,
               prop.major, prop.minor, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0,
               prop.major < MIN_CC_MAJOR ? " (too old for exitrl: needs 8.0)" : "");
    }
}

extern "C" int exitrl_cuda_available(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    for (int d = 0; d < count; d++) {
        int major = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) == cudaSuccess &&
            major >= MIN_CC_MAJOR)
            return 1;
    }
    return 0;
}

extern "C" exitrl_backend *exitrl_backend_cuda_create(int device, int fp32_mode, char *why,
                                                      size_t why_len) {
    char local_why[256];
    if (!why || !why_len) {
        why = local_why;
        why_len = sizeof local_why;
    }
    why[0] = 0;
    int count = 0, no_graphs = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        set_why(why, why_len, "no CUDA device: %s",
                err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports 0 GPUs");
        cudaGetLastError();
        return NULL;
    }
    if (device < 0 || device >= count) {
        set_why(why, why_len, "CUDA device %d does not exist (%d present)", device, count);
        return NULL;
    }
    cudaDeviceProp prop;
    if ((err = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
        set_why(why, why_len, "cudaGetDeviceProperties(%d): %s", device, cudaGetErrorString(err));
        return NULL;
    }
    if (prop.major < MIN_CC_MAJOR) {
        set_why(why, why_len, "%s has compute capability %d.%d; exitrl needs %d.0 or newer (bf16)",
                prop.name, prop.major, prop.minor, MIN_CC_MAJOR);
        return NULL;
    }

    cuda_ctx *ctx = (cuda_ctx *)calloc(1, sizeof *ctx);
    exitrl_backend *be = (exitrl_backend *)calloc(1, sizeof *be);
    if (!ctx || !be) {
        free(ctx);
        free(be);
        set_why(why, why_len, "out of host memory");
        return NULL;
    }
    ctx->fp32 = fp32_mode ? 1 : 0;
    snprintf(ctx->device_name, sizeof ctx->device_name, "%s", prop.name);
    ctx->max_smem_optin = prop.sharedMemPerBlockOptin;

    if (cuda_attention_select(ctx, why, why_len) != 0) goto fail;
    if (env_flag("EXITRL_STOCHASTIC_ROUNDING", &ctx->stochastic_rounding, why, why_len) ||
        env_flag("EXITRL_CUDA_SYNC_EACH_OP", &ctx->sync_each_op, why, why_len) ||
        env_flag("EXITRL_CUDA_NO_GRAPHS", &no_graphs, why, why_len))
        goto fail;

#define CREATE_STEP(call)                                                                       \
    if ((err = (call)) != cudaSuccess) {                                                        \
        set_why(why, why_len, "%s failed: %s", #call, cudaGetErrorString(err));                 \
        cudaGetLastError();                                                                     \
        goto fail;                                                                              \
    }
    CREATE_STEP(cudaSetDevice(device));
    CREATE_STEP(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    CREATE_STEP(cudaMalloc((void **)&ctx->dev_err, 4 * sizeof(int)));
    CREATE_STEP(cudaMemsetAsync(ctx->dev_err, 0, 4 * sizeof(int), ctx->stream));
    CREATE_STEP(cudaMalloc(&ctx->lt_workspace, LT_WORKSPACE_BYTES));
    ctx->lt_workspace_bytes = LT_WORKSPACE_BYTES;
    probe_kernel<<<1, 1, 0, ctx->stream>>>(ctx->dev_err);
    if ((err = cudaGetLastError()) != cudaSuccess || (err = cudaStreamSynchronize(ctx->stream)) != cudaSuccess) {
        set_why(why, why_len,
                "cannot run kernels on %s (sm_%d%d): %s; rebuild with "
                "-DCMAKE_CUDA_ARCHITECTURES=%d%d",
                prop.name, prop.major, prop.minor, cudaGetErrorString(err), prop.major, prop.minor);
        goto fail;
    }
#undef CREATE_STEP
    {
        cublasStatus_t st = cublasLtCreate(&ctx->lt);
        if (st != CUBLAS_STATUS_SUCCESS) {
            ctx->lt = NULL;
            set_why(why, why_len, "cublasLtCreate failed: %s", cuda_cublas_status_text(st));
            goto fail;
        }
    }

    if (ctx->attention == CUDA_ATTENTION_CUDNN && cuda_attention_cudnn_init(ctx, why, why_len) != 0) goto fail;

    be->name = "cuda";
    be->act_dtype = ctx->fp32 ? EXITRL_F32 : EXITRL_BF16;
    be->ctx = ctx;
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->copy = cu_copy;
    be->zero = cu_zero;
    be->sync = cu_sync;
    be->f32_to_act = cuda_f32_to_act;
    be->act_to_f32 = cuda_act_to_f32;
    be->encoder_forward = cuda_encoder_forward;
    be->layernorm_forward = cuda_layernorm_forward;
    be->residual_layernorm_forward = cuda_residual_layernorm_forward;
    be->matmul_forward = cuda_matmul_forward;
    be->attention_forward = cuda_attention_forward;
    be->classifier_forward_backward = cuda_classifier_forward_backward;
    be->encoder_backward = cuda_encoder_backward;
    be->layernorm_backward = cuda_layernorm_backward;
    be->matmul_backward = cuda_matmul_backward;
    be->attention_backward = cuda_attention_backward;
    be->attention_forward_packed = cuda_attention_forward_packed;
    be->attention_backward_packed = cuda_attention_backward_packed;
    be->encoder_forward_at = cuda_encoder_forward_at;
    be->kv_cache_store = cuda_kv_cache_store;
    be->attention_decode = cuda_attention_decode;
    be->gather_rows = cuda_gather_rows;
    be->hidden_accumulate = cuda_hidden_accumulate;
    be->sample_step = cuda_sample_step;
    be->group_advantage = cuda_group_advantage;
    be->diversity_scale = cuda_diversity_scale;
    be->score_groups = cuda_score_groups;
    be->grpo_classifier = cuda_grpo_classifier;
    be->grad_norm_clip = cuda_grad_norm_clip;
    be->adamw_update = cuda_adamw_update;
    if (!no_graphs) {
        be->graph_capture_begin = cu_graph_capture_begin;
        be->graph_capture_end = cu_graph_capture_end;
        be->graph_launch = cu_graph_launch;
        be->graph_destroy = cu_graph_destroy;
    }
#ifdef EXITRL_HAVE_NCCL
    be->comm_unique_id = cuda_comm_unique_id;
    be->comm_init = cuda_comm_init;
    be->allreduce_sum_f32 = cuda_allreduce_sum_f32;
#endif
    be->destroy = cu_destroy;
    return be;

fail:
    ctx_release(ctx);
    free(be);
    return NULL;
}
