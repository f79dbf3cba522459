// Runtime of the CPU CUDA simulator (see include/sim_cuda.h).
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "sim_cuda.h"

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

namespace {
// A barrier that threads can leave (a CUDA thread that returned no longer takes part).
struct Barrier {
    std::mutex m;
    std::condition_variable cv;
    int expected = 0, arrived = 0;
    long gen = 0;
    void wait() {
        std::unique_lock<std::mutex> l(m);
        long g = gen;
        if (++arrived == expected) {
            arrived = 0;
            gen++;
            cv.notify_all();
        } else {
            cv.wait(l, [&] { return gen != g; });
        }
    }
    void leave() {
        std::unique_lock<std::mutex> l(m);
        expected--;
        if (arrived > 0 && arrived == expected) {
            arrived = 0;
            gen++;
            cv.notify_all();
        }
    }
};

struct Block {
    Barrier block_bar;
    std::vector<Barrier> warp_bar;
    std::vector<double> xchg;
    std::vector<uint32_t> xchg32; // sim_warp_gather: SIM_GATHER_MAX words per thread
    void *smem = nullptr;
};
thread_local Block *cur_block = nullptr;
std::mutex atomic_mutex;
int last_error = 0;
}  // namespace

void __syncthreads() { cur_block->block_bar.wait(); }
void __syncwarp(unsigned) { cur_block->warp_bar[threadIdx.x / 32].wait(); }

static double shfl(double v, int lane_mask) {
    unsigned t = threadIdx.x;
    cur_block->xchg[t] = v;
    cur_block->warp_bar[t / 32].wait();
    double r = cur_block->xchg[(t & ~31u) | ((t & 31u) ^ (unsigned)lane_mask)];
    cur_block->warp_bar[t / 32].wait();
    return r;
}
float __shfl_xor_sync(unsigned, float v, int m) { return (float)shfl(v, m); }
double __shfl_xor_sync(unsigned, double v, int m) { return shfl(v, m); }
int __shfl_xor_sync(unsigned, int v, int m) { return (int)shfl(v, m); }
void sim_warp_gather(const uint32_t *mine, int n, uint32_t *all) {
    unsigned t = threadIdx.x, w0 = t & ~31u;
    for (int i = 0; i < n; i++) cur_block->xchg32[t * SIM_GATHER_MAX + i] = mine[i];
    cur_block->warp_bar[t / 32].wait();
    for (unsigned l = 0; l < 32 && w0 + l < blockDim.x; l++)
        for (int i = 0; i < n; i++) all[l * n + i] = cur_block->xchg32[(w0 + l) * SIM_GATHER_MAX + i];
    cur_block->warp_bar[t / 32].wait();
}

int atomicCAS(int *addr, int compare, int val) {
    std::lock_guard<std::mutex> l(atomic_mutex);
    int old = *addr;
    if (old == compare) *addr = val;
    return old;
}
void *sim_dynamic_smem() { return cur_block->smem; }

// ---- graph capture: ops issued while capturing are recorded; a graph launch replays them ----
struct sim_graph {
    std::vector<std::function<void()>> ops;
};
struct sim_graph_exec {
    std::vector<std::function<void()>> ops;
};
static std::vector<std::function<void()>> *capture_list = nullptr;
static void run_or_record(std::function<void()> op) {
    if (capture_list)
        capture_list->push_back(std::move(op));
    else
        op();
}

static void run_grid_now(dim3 g, dim3 b, size_t smem, const std::function<void()> &body);
void sim_run_grid(dim3 g, dim3 b, size_t smem, const std::function<void()> &body) {
    run_or_record([=]() { run_grid_now(g, b, smem, body); });
}

static void run_grid_now(dim3 g, dim3 b, size_t smem, const std::function<void()> &body) {
    if (b.y != 1 || b.z != 1 || g.z != 1 || b.x == 0 || b.x > 1024) {
        fprintf(stderr, "cudasim: unsupported launch shape block (%u,%u,%u) grid (%u,%u,%u)\n", b.x, b.y, b.z, g.x, g.y,
                g.z);
        abort();
    }
    if (smem > 227 * 1024) {
        fprintf(stderr, "cudasim: %zu bytes of dynamic shared memory exceed the H100's 227 KiB\n", smem);
        abort();
    }
    for (unsigned by = 0; by < g.y; by++)
        for (unsigned bx = 0; bx < g.x; bx++) {
            Block blk;
            blk.block_bar.expected = (int)b.x;
            blk.warp_bar = std::vector<Barrier>((b.x + 31) / 32);
            for (unsigned w = 0; w < blk.warp_bar.size(); w++) blk.warp_bar[w].expected = (int)std::min(32u, b.x - 32 * w);
            blk.xchg.assign(b.x, 0.0);
            blk.xchg32.assign((size_t)b.x * SIM_GATHER_MAX, 0u);
            // poison shared memory: kernels must not read what they did not write
            blk.smem = smem ? malloc(smem) : nullptr;
            if (blk.smem) {
                float nan = NAN;
                for (size_t i = 0; i + 4 <= smem; i += 4) memcpy((char *)blk.smem + i, &nan, 4);
            }
            std::vector<std::thread> threads;
            threads.reserve(b.x);
            for (unsigned t = 0; t < b.x; t++)
                threads.emplace_back([&, t, bx, by]() {
                    threadIdx = uint3{t, 0, 0};
                    blockIdx = uint3{bx, by, 0};
                    blockDim = b;
                    gridDim = g;
                    cur_block = &blk;
                    body();
                    blk.warp_bar[t / 32].leave();
                    blk.block_bar.leave();
                });
            for (auto &th : threads) th.join();
            free(blk.smem);
        }
}

// ---- runtime API ----
extern "C" {
const char *cudaGetErrorName(cudaError_t e) { return e ? "cudaErrorSim" : "cudaSuccess"; }
const char *cudaGetErrorString(cudaError_t e) { return e ? "simulated error" : "no error"; }
cudaError_t cudaGetLastError(void) {
    int e = last_error;
    last_error = 0;
    return e;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    memset(p, 0, sizeof *p);
    strcpy(p->name, "cudasim (CPU)");
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 4;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->totalGlobalMem = (size_t)8 << 30;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, int attr, int) {
    *v = attr == cudaDevAttrMultiProcessorCount ? 4 : 9; /* as cudaGetDeviceProperties; else the major version */
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    *s = (cudaStream_t)malloc(1);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    free(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return capture_list ? 1 : cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t, int) {
    if (capture_list) return 1;
    capture_list = new std::vector<std::function<void()>>();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g) {
    if (!capture_list) return 1;
    *g = new sim_graph{std::move(*capture_list)};
    delete capture_list;
    capture_list = nullptr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
    *e = new sim_graph_exec{g->ops};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) {
    if (capture_list) return 1;
    for (auto &op : e->ops) op();
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n) {
    if (capture_list) return 1; // not allowed while capturing (thread-local mode)
    *p = malloc(n);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xA5, n);  // garbage, like real device memory
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (capture_list) return 1;
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) {
    run_or_record([=]() { memset(p, v, n); });
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
    run_or_record([=]() { memmove(d, s, n); });
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) {
    *f = (size_t)1 << 30;
    *t = (size_t)8 << 30;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}
size_t cudnnGetVersion(void) { return 91900; }

// ---- cuBLASLt reference ----
const char *cublasGetStatusName(cublasStatus_t s) { return s ? "CUBLAS_STATUS_ERROR" : "CUBLAS_STATUS_SUCCESS"; }
const char *cublasGetStatusString(cublasStatus_t) { return "simulated"; }
size_t cublasLtGetVersion(void) { return 130100; }
}

struct sim_lt {
    int dummy;
};
struct sim_desc {
    int transa = 0, transb = 0, epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;
    void *aux = nullptr;
    int64_t aux_ld = 0;
    int bias_type = -1, aux_type = -1;
};
struct sim_layout {
    int type;
    uint64_t rows, cols;
    int64_t ld;
};
struct sim_pref {
    int dummy;
};

extern "C" {
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new sim_lt();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t, cudaDataType_t) {
    *d = new sim_desc();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *v,
                                              size_t n) {
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
        if (n != 4) return CUBLAS_STATUS_INVALID_VALUE;
        d->transa = *(const int32_t *)v;
        break;
    case CUBLASLT_MATMUL_DESC_TRANSB:
        if (n != 4) return CUBLAS_STATUS_INVALID_VALUE;
        d->transb = *(const int32_t *)v;
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if (n != 4) return CUBLAS_STATUS_INVALID_VALUE;
        d->epilogue = (int)*(const uint32_t *)v;
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (n != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&d->bias, v, n);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
        if (n != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&d->aux, v, n);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
        if (n != 8) return CUBLAS_STATUS_INVALID_VALUE;
        d->aux_ld = *(const int64_t *)v;
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        if (n != 4) return CUBLAS_STATUS_INVALID_VALUE;
        d->bias_type = *(const int32_t *)v;
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
        if (n != 4) return CUBLAS_STATUS_INVALID_VALUE;
        d->aux_type = *(const int32_t *)v;
        break;
    default:
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (ld < (int64_t)rows) return CUBLAS_STATUS_INVALID_VALUE;  // column-major: ld >= rows
    *l = new sim_layout{t, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new sim_pref();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t a,
                                                    const void *, size_t n) {
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES ? n != 8 : n != 4) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}
}

static cublasStatus_t check_shapes(sim_desc *d, sim_layout *a, sim_layout *b, sim_layout *dl) {
    uint64_t am = d->transa ? a->cols : a->rows, ak = d->transa ? a->rows : a->cols;
    uint64_t bk = d->transb ? b->cols : b->rows, bn = d->transb ? b->rows : b->cols;
    if (am != dl->rows || bn != dl->cols || ak != bk) {
        fprintf(stderr, "cudasim: cublasLt shape mismatch: op(A) %llux%llu op(B) %llux%llu D %llux%llu\n",
                (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn,
                (unsigned long long)dl->rows, (unsigned long long)dl->cols);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (a->type != b->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    if ((d->epilogue & 128) && (d->aux_ld % 8 || d->aux_ld < (int64_t)dl->rows || !d->aux))
        return CUBLAS_STATUS_INVALID_VALUE;
    if ((d->epilogue & 4) && !d->bias) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d,
                                                         cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                         cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                                         cublasLtMatmulPreference_t, int req,
                                                         cublasLtMatmulHeuristicResult_t *res, int *found) {
    (void)c;
    *found = 0;
    if (req < 1) return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t st = check_shapes(d, a, b, dl);
    if (st == CUBLAS_STATUS_INVALID_VALUE) return st;
    if (st != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_NOT_SUPPORTED;
    // CUDASIM_NO_FUSED=1 models a cuBLASLt without the GELU/bias epilogues: exercises the fallback
    const char *nf = getenv("CUDASIM_NO_FUSED");
    if (nf && *nf == '1' && d->epilogue != CUBLASLT_EPILOGUE_DEFAULT) return CUBLAS_STATUS_NOT_SUPPORTED;
    memset(res, 0, sizeof *res);
    res->state = CUBLAS_STATUS_SUCCESS;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

static double load(const void *p, int type, size_t i) {
    if (type == CUDA_R_32F) return ((const float *)p)[i];
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}
static void store(void *p, int type, size_t i, double v) {
    if (type == CUDA_R_32F)
        ((float *)p)[i] = (float)v;
    else
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v);
}

static void matmul_now(const sim_desc *d, float al, const void *A, const sim_layout *la, const void *B,
                       const sim_layout *lb, float be, const void *C, const sim_layout *lc, void *D,
                       const sim_layout *ld);

extern "C" cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                                         cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb,
                                         const void *beta, const void *C, cublasLtMatrixLayout_t lc, void *D,
                                         cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t *, void *, size_t,
                                         cudaStream_t) {
    cublasStatus_t st = check_shapes(d, la, lb, ld);
    if (st) return st;
    if (lc->rows != ld->rows || lc->cols != ld->cols || lc->type != ld->type) return CUBLAS_STATUS_INVALID_VALUE;
    // Descriptors and scalars are read when the call is issued, as cuBLASLt does (a captured call
    // keeps the values it was given even if the descriptors change later).
    sim_desc dd = *d;
    sim_layout a_l = *la, b_l = *lb, c_l = *lc, d_l = *ld;
    float al = *(const float *)alpha, be = *(const float *)beta;
    run_or_record([=]() { matmul_now(&dd, al, A, &a_l, B, &b_l, be, C, &c_l, D, &d_l); });
    return CUBLAS_STATUS_SUCCESS;
}

static void matmul_now(const sim_desc *d, float al, const void *A, const sim_layout *la, const void *B,
                       const sim_layout *lb, float be, const void *C, const sim_layout *lc, void *D,
                       const sim_layout *ld) {
    uint64_t M = ld->rows, N = ld->cols, K = d->transa ? la->rows : la->cols;
    int bias_type = d->bias_type >= 0 ? d->bias_type : ld->type, aux_type = d->aux_type >= 0 ? d->aux_type : ld->type;
    std::vector<double> out(M * N);
    for (uint64_t j = 0; j < N; j++)
        for (uint64_t i = 0; i < M; i++) {
            double s = 0.0;
            for (uint64_t k = 0; k < K; k++) {
                size_t ai = d->transa ? (size_t)(k + i * la->ld) : (size_t)(i + k * la->ld);
                size_t bi = d->transb ? (size_t)(j + k * lb->ld) : (size_t)(k + j * lb->ld);
                s += load(A, la->type, ai) * load(B, lb->type, bi);
            }
            s *= al;
            if (be != 0.0f) s += be * load(C, lc->type, (size_t)(i + j * lc->ld));
            out[i + j * M] = s;
        }
    for (uint64_t j = 0; j < N; j++)
        for (uint64_t i = 0; i < M; i++) {
            double x = out[i + j * M];
            if (d->epilogue & 4) x += load(d->bias, bias_type, i);
            if (d->epilogue & 32) {
                if (d->epilogue & 128) store(d->aux, aux_type, (size_t)(i + j * d->aux_ld), x);
                float xf = (float)x;
                x = 0.5f * xf * (1.0f + tanhf(0.7978845608028654f * (xf + 0.044715f * xf * xf * xf)));
            }
            store(D, ld->type, (size_t)(i + j * ld->ld), x);
        }
}
