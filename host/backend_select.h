#ifndef EXITRL_BACKEND_SELECT_H
#define EXITRL_BACKEND_SELECT_H
#include "ops.h"
/* device: "auto" (CUDA when a GPU answers, else CPU), "cpu" or "cuda". Returns NULL with a message
 * on stderr when the requested backend cannot be opened. fp32_mode applies to CUDA only. */
exitrl_backend *backend_open(const char *device, int fp32_mode);
#endif
