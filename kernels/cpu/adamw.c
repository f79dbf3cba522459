#include <math.h>

#include "cpu_ops.h"

float cpu_sum_squares(exitrl_backend *be, const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return (float)s;
}

void cpu_adamw_update(exitrl_backend *be, float *master, void *params_act, const float *grads,
                      float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
                      float weight_decay, float grad_scale, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
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
