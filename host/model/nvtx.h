/* NVTX ranges around phases (forward, backward, optimizer, each layer, rollout, ...), so Nsight
 * Systems and Nsight Compute show them. No-ops when the CUDA backend is not compiled in. */
#ifndef EXITRL_NVTX_H
#define EXITRL_NVTX_H
#ifdef EXITRL_HAVE_CUDA
#include <nvtx3/nvToolsExt.h>
static inline void nvtx_push(const char *name) { nvtxRangePushA(name); }
static inline void nvtx_pop(void) { nvtxRangePop(); }
#else
static inline void nvtx_push(const char *name) { (void)name; }
static inline void nvtx_pop(void) {}
#endif
#endif
