// CPU simulator of the CUDA subset exitrl's kernels/cuda uses: one pthread per CUDA thread, blocks
// run one after another, __syncthreads / __syncwarp are real barriers, warp shuffles go through an
// exchange buffer, mma.sync m16n8k16 (bf16) is emulated from a warp-wide gather, device memory is
// host memory (so ASan checks bounds), cuBLASLt is a reference column-major GEMM with the
// documented epilogues, CUB's radix sort is std::stable_sort.
#pragma once
#define CUDASIM 1 /* kernels that use an instruction the simulator emulates check this */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
#include <algorithm>
#include <functional>
#include <tuple>
#include <utility>
#include <vector>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __device_builtin__

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidValue = 1, cudaErrorNoDevice = 100 };
typedef struct sim_stream *cudaStream_t;
enum { cudaStreamNonBlocking = 1 };
typedef enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 } cudaMemcpyKind;
enum { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrComputeCapabilityMajor = 75 };
enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
typedef struct {
    char name[256];
    int major, minor, multiProcessorCount;
    size_t sharedMemPerBlockOptin, totalGlobalMem;
} cudaDeviceProp;

#ifdef __cplusplus
extern "C" {
#endif
const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceGetAttribute(int *v, int attr, int d);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDriverGetVersion(int *v);
/* CUDA graphs: while a stream captures, launches, memsets, copies and matmuls are recorded instead
 * of run (synchronising or allocating then fails, as on a GPU in thread-local capture mode); a
 * graph launch replays the recorded ops in order. */
typedef struct sim_graph *cudaGraph_t;
typedef struct sim_graph_exec *cudaGraphExec_t;
enum { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
cudaError_t cudaStreamBeginCapture(cudaStream_t s, int mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
size_t cudnnGetVersion(void);
#ifdef __cplusplus
}
#endif

// ---- cuBLAS / cuBLASLt subset ----
typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef cudaDataType_t cudaDataType;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_AUX = (32 | 128),
    CUBLASLT_EPILOGUE_GELU_BIAS = (32 | 4),
    CUBLASLT_EPILOGUE_GELU_AUX_BIAS = (32 | 128 | 4),
} cublasLtEpilogue_t;
typedef enum {
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE = 22,
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26
} cublasLtMatmulDescAttributes_t;
typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
} cublasLtMatmulPreferenceAttributes_t;
typedef struct sim_lt *cublasLtHandle_t;
typedef struct sim_desc *cublasLtMatmulDesc_t;
typedef struct sim_layout *cublasLtMatrixLayout_t;
typedef struct sim_pref *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

#ifdef __cplusplus
extern "C" {
#endif
const char *cublasGetStatusName(cublasStatus_t s);
const char *cublasGetStatusString(cublasStatus_t s);
size_t cublasLtGetVersion(void);
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *v,
                                              size_t n);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols,
                                          int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void *v, size_t n);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t p, int req,
                                              cublasLtMatmulHeuristicResult_t *res, int *found);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t wsn, cudaStream_t s);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
// ---- device-side builtins ----
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 {
    unsigned x, y, z;
};
extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

struct __nv_bfloat16 {
    unsigned short x;
};
inline float __bfloat162float(__nv_bfloat16 b) {
    uint32_t u = (uint32_t)b.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.x = 0x7fc0;
        return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.x = (unsigned short)(u >> 16);
    return r;
}
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short v) {
    __nv_bfloat16 r;
    r.x = v;
    return r;
}
inline uint32_t __float_as_uint(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
float __shfl_xor_sync(unsigned mask, float v, int lane_mask);
double __shfl_xor_sync(unsigned mask, double v, int lane_mask);
int __shfl_xor_sync(unsigned mask, int v, int lane_mask);
// Every lane of the warp gives n <= SIM_GATHER_MAX words and gets all lanes' words: all[lane * n + i].
#define SIM_GATHER_MAX 8
void sim_warp_gather(const uint32_t *mine, int n, uint32_t *all);
int atomicCAS(int *addr, int compare, int val);
void *sim_dynamic_smem();

template <typename K> cudaError_t cudaFuncSetAttribute(K, int, int) { return cudaSuccess; }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, d += a b, emulated from the fragment
// layouts of the PTX ISA (g = lane / 4, t = lane % 4; the lower-indexed bf16 of a pair in the low
// half): A 16x16 a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..);
// B 16x8 b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8.., n g); C 16x8 c[0..1] = (g, 2t..2t+1),
// c[2..3] = (g+8, 2t..2t+1). Every lane of the warp must call it.
inline float sim_bf16_half(uint32_t pair, int hi) {
    __nv_bfloat16 b;
    b.x = (unsigned short)(hi ? pair >> 16 : pair & 0xffffu);
    return __bfloat162float(b);
}
inline void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]}, all[32 * 6];
    sim_warp_gather(mine, 6, all);
    float A[16][16], B[16][8]; // the whole tiles, rebuilt from the 32 lanes' fragments
    for (int l = 0; l < 32; l++) {
        int g = l / 4, t = l % 4;
        const uint32_t *f = all + 6 * l;
        for (int h = 0; h < 2; h++) {
            A[g][2 * t + h] = sim_bf16_half(f[0], h);
            A[g + 8][2 * t + h] = sim_bf16_half(f[1], h);
            A[g][2 * t + 8 + h] = sim_bf16_half(f[2], h);
            A[g + 8][2 * t + 8 + h] = sim_bf16_half(f[3], h);
            B[2 * t + h][g] = sim_bf16_half(f[4], h);
            B[2 * t + 8 + h][g] = sim_bf16_half(f[5], h);
        }
    }
    int lane = (int)(threadIdx.x % 32), g = lane / 4, t = lane % 4;
    for (int e = 0; e < 4; e++) {
        int r = g + 8 * (e >> 1), c = 2 * t + (e & 1);
        float acc = 0.0f;
        for (int k = 0; k < 16; k++) acc += A[r][k] * B[k][c];
        d[e] += acc;
    }
}

void sim_run_grid(dim3 g, dim3 b, size_t smem, const std::function<void()> &body);

template <typename... P> struct sim_launcher {
    void (*kernel)(P...);
    dim3 g, b;
    size_t smem;
    template <typename... A> void operator()(A &&...a) {
        std::tuple<P...> args(std::forward<A>(a)...);
        void (*k)(P...) = kernel;
        // by value: a launch recorded during a graph capture runs after this frame is gone
        sim_run_grid(g, b, smem, [args, k]() { std::apply(k, args); });
    }
};
template <typename... P>
sim_launcher<P...> sim_launch(void (*k)(P...), dim3 g, dim3 b, size_t smem = 0, cudaStream_t s = 0) {
    (void)s;
    return sim_launcher<P...>{k, g, b, smem};
}

namespace cub {
struct DeviceRadixSort {
    template <typename K, typename V, typename N>
    static cudaError_t SortPairs(void *temp, size_t &bytes, const K *kin, K *kout, const V *vin, V *vout, N n,
                                 int begin_bit = 0, int end_bit = 32, cudaStream_t s = 0) {
        (void)begin_bit;
        (void)end_bit;
        (void)s;
        if (!temp) {
            bytes = 16;
            return cudaSuccess;
        }
        std::vector<std::pair<K, V>> v((size_t)n);
        for (N i = 0; i < n; i++) v[(size_t)i] = std::make_pair(kin[i], vin[i]);
        std::stable_sort(v.begin(), v.end(), [](const std::pair<K, V> &a, const std::pair<K, V> &b) {
            return a.first < b.first;
        });
        for (N i = 0; i < n; i++) {
            kout[i] = v[(size_t)i].first;
            vout[i] = v[(size_t)i].second;
        }
        return cudaSuccess;
    }
};
}  // namespace cub
#endif
