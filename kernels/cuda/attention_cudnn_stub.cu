/* cuDNN attention in a build that cannot run it: no cuDNN found by CMake (EXITRL_HAVE_CUDNN not
 * defined), or cuDNN headers older than MIN_CUDNN (cudnn_graph.h). The functions of
 * attention_cudnn.cu say why wherever they are asked; cuda_attention_cudnn_init fails with that
 * reason, so EXITRL_ATTENTION=cudnn is refused when the backend is created. */
#include <stdio.h>

#include "cudnn_graph.h"

#if !ATT_CUDNN

static void not_built(char *why, size_t why_len) {
#if defined(EXITRL_HAVE_CUDNN)
    snprintf(why, why_len, "this build's cuDNN headers are %d.%d.%d; cuDNN attention needs %d.%d or newer", CUDNN_MAJOR,
             CUDNN_MINOR, CUDNN_PATCHLEVEL, MIN_CUDNN / 10000, MIN_CUDNN % 10000 / 100);
#else
    snprintf(why, why_len, "exitrl was not built with cuDNN (CMake found no libcudnn)");
#endif
}

extern "C" int cuda_attention_cudnn_available(char *why, size_t why_len) {
    not_built(why, why_len);
    return 0;
}

extern "C" int cuda_attention_cudnn_init(cuda_ctx *ctx, char *why, size_t why_len) {
    (void)ctx;
    char reason[256];
    not_built(reason, sizeof reason);
    snprintf(why, why_len, "EXITRL_ATTENTION=cudnn is unavailable: %s; use EXITRL_ATTENTION=flash", reason);
    return -1;
}

extern "C" void cuda_attention_cudnn_release(cuda_ctx *ctx) { (void)ctx; }

extern "C" void *cuda_attention_cudnn_plan(cuda_ctx *ctx, const char *op, int backward, int B, int T, int C, int NH,
                                          const void *const *ptrs, int nptrs, char *why, size_t why_len,
                                          int *first) {
    char reason[256];
    not_built(reason, sizeof reason);
    CUDA_UNSUPPORTED("%s: %s", op, reason);
}

extern "C" void cuda_attention_cudnn_forward(cuda_ctx *ctx, void *plan, void *out, float *lse, const void *qkv, int B,
                                             int T, int C, int NH) {
    char why[256];
    not_built(why, sizeof why);
    CUDA_UNSUPPORTED("attention_forward: %s", why);
}

extern "C" void cuda_attention_cudnn_backward(cuda_ctx *ctx, void *plan, void *dqkv, const void *dout, const void *qkv,
                                              const void *out, const float *lse, int B, int T, int C, int NH) {
    char why[256];
    not_built(why, sizeof why);
    CUDA_UNSUPPORTED("attention_backward: %s", why);
}

#endif
