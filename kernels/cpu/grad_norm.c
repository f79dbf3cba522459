/* CPU reference of grad_norm_clip (ops.h, "optimizer"): the global norm accumulated in double, and
 * the clip scale written into the step values. */
#include <math.h>

#include "cpu_ops.h"

void cpu_grad_norm_clip(exitrl_backend *be, float *vals, const float *x, size_t n, float max_norm) {
    (void)be;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    float norm = (float)sqrt(s);
    float scale = (max_norm > 0.0f && norm > max_norm) ? max_norm / norm : 1.0f;
    if (!isfinite(norm)) scale = 0.0f;
    vals[EXITRL_STEP_NORM] = norm;
    vals[EXITRL_STEP_SCALE] = scale;
}
