/* Chooses the backend at start: CUDA when compiled in and a GPU answers, else the CPU reference.
 * When the CUDA backend is not compiled in, its entry points are defined here and say so. */
#include "backend_select.h"

#include <stdio.h>
#include <string.h>

#ifndef EXITRL_HAVE_CUDA
exitrl_backend *exitrl_backend_cuda_create(int device, int fp32_mode, char *why, size_t why_len) {
    (void)device;
    (void)fp32_mode;
    if (why && why_len) snprintf(why, why_len, "this build has no CUDA backend (nvcc was not found)");
    return NULL;
}
int exitrl_cuda_available(void) { return 0; }
void exitrl_cuda_info(char *buf, size_t len) {
    snprintf(buf, len, "CUDA backend: not compiled in (nvcc was not found at build time)\n");
}
#endif

exitrl_backend *backend_open(const char *device, int fp32_mode) {
    char why[256] = "";
    if (strcmp(device, "cpu") == 0) return exitrl_backend_cpu_create();
    if (strcmp(device, "cuda") == 0) {
        exitrl_backend *be = exitrl_backend_cuda_create(0, fp32_mode, why, sizeof why);
        if (!be) fprintf(stderr, "exitrl: --device cuda: %s\n", why);
        return be;
    }
    if (strcmp(device, "auto") == 0) {
        if (exitrl_cuda_available()) {
            exitrl_backend *be = exitrl_backend_cuda_create(0, fp32_mode, why, sizeof why);
            if (be) return be;
            fprintf(stderr, "exitrl: CUDA backend unavailable (%s); using the CPU backend\n", why);
        }
        return exitrl_backend_cpu_create();
    }
    fprintf(stderr, "exitrl: unknown device '%s' (expected auto, cpu or cuda)\n", device);
    return NULL;
}
