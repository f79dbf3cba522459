/* CPU reference of adamw_update (ops.h, "optimizer"). */
#include <math.h>

#include "cpu_ops.h"

void cpu_adamw_update(exitrl_backend *be, float *master, void *params_act, const float *grads,
                      float *m, float *v, size_t n, const float *vals, float beta1, float beta2,
                      float eps, float weight_decay) {
    (void)be;
    const float lr = vals[EXITRL_STEP_LR], bc1 = vals[EXITRL_STEP_BC1], bc2 = vals[EXITRL_STEP_BC2];
    const float grad_scale = vals[EXITRL_STEP_SCALE];
    float *act = params_act;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        master[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * master[i]);
        act[i] = master[i];
    }
}
