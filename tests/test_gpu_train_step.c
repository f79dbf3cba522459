/* One training step of a tiny GPT on the CPU reference and on CUDA: the loss and every parameter
 * tensor's gradient must agree (CUDA fp32 mode), and 20 AdamW steps on a fixed batch must give
 * the same loss curve within a stated band (fp32 and bf16), with the loss going down.
 *
 * Bands: fp32 mode: step-1 loss within 1e-4 relative; gradients per tensor within rtol 1e-3 plus
 * 1e-3 x the tensor's max |gradient|; losses along 20 steps within 1e-3 relative (the updates
 * compound tiny differences). bf16 mode: step-1 loss within 1e-2 relative, gradient norm within
 * 5%, losses along 20 steps within 3% relative + 0.02.
 * The same 20 steps through gpt_train_step (captured in a CUDA graph from step 2 on, then replayed)
 * must give the op-by-op losses and final weights to 1e-6 relative: the same kernels on the same
 * inputs (EXITRL_CUDA_NO_GRAPHS=1 turns graphs off, and this check then only compares the paths).
 * Skips (exit 77) when no GPU is present. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "test_util.h"
#include "model/tokenizer.h"

#define STEPS 20

static float *download_all(gpt_model *m, const float *src) {
    return dev_read(m->backend, src, m->num_params * sizeof(float));
}

static double l2(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

/* Runs STEPS steps of forward/backward/AdamW; losses[s] is the loss before update s. */
static void train(gpt_model *m, int B, int T, const gpt_adamw_params *opt, float *losses) {
    for (int s = 0; s < STEPS; s++) {
        gpt_zero_grad(m);
        losses[s] = gpt_forward_backward(m, B, T);
        gpt_update(m, opt);
    }
}

/* The same steps through gpt_train_step, whose device work is captured in a graph and replayed. */
static void check_graph_steps(exitrl_backend *gpu, const gpt_config *cfg, int B, int T, const int *tokens,
                              const int *targets, const float *init, const gpt_adamw_params *opt,
                              const float *eager_losses, gpt_model *eager, const char *mode) {
    gpt_model mg;
    if (gpt_create(&mg, gpu, cfg, B, T)) {
        CHECK(0, "%s: gpt_create for the graph run failed", mode);
        return;
    }
    gpt_load_params(&mg, init);
    gpt_set_batch(&mg, tokens, targets, NULL, B, T);
    double worst = 0.0;
    for (int s = 0; s < STEPS; s++) {
        float norm = 0.0f, loss = gpt_train_step(&mg, B, T, opt, &norm);
        double rel = fabs(loss - eager_losses[s]) / fabs(eager_losses[s]);
        worst = fmax(worst, rel);
        CHECK(rel <= 1e-6, "%s: gpt_train_step %d loss %.8f vs op-by-op %.8f", mode, s + 1, loss, eager_losses[s]);
        CHECK(isfinite(norm) && norm > 0, "%s: gpt_train_step %d gradient norm %g", mode, s + 1, norm);
    }
    const char *off = getenv("EXITRL_CUDA_NO_GRAPHS");
    int graphs = !(off && !strcmp(off, "1"));
    if (graphs) CHECK(mg.step_graph != NULL, "%s: gpt_train_step did not capture a CUDA graph", mode);
    float *a = download_all(&mg, mg.master), *b = download_all(eager, eager->master);
    double mx = 0.0, diff = 0.0;
    for (size_t i = 0; i < mg.num_params; i++) {
        mx = fmax(mx, fabs(b[i]));
        diff = fmax(diff, fabs(a[i] - b[i]));
    }
    printf("%s: %s steps vs op by op: worst loss gap %.2e relative, weights max diff %.2e\n", mode,
           graphs ? "graph-replayed" : "gpt_train_step", worst, diff);
    CHECK(diff <= 1e-6 * mx, "%s: weights after %d graph steps differ by %.3g (max |w| %.3g)", mode, STEPS, diff, mx);
    free(a);
    free(b);
    gpt_destroy(&mg);
}

int main(void) {
    if (!exitrl_cuda_available()) {
        printf("SKIP: no GPU\n");
        return TEST_SKIP;
    }
    /* Tiny but with every feature: 2 layers, head size 16, T not a multiple of 64, padded vocab. */
    gpt_config cfg = {2, 4, 64, 64, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};
    const int B = 4, T = 48;
    const size_t BT = (size_t)B * T;
    int *tokens = malloc(BT * sizeof(int)), *targets = malloc(BT * sizeof(int));
    unsigned long long seed = 7;
    for (size_t i = 0; i < BT; i++) tokens[i] = (int)((test_randf(&seed, 1.0f) + 1.0f) * 0.5f * 256) % 256;
    for (size_t i = 0; i < BT; i++) {
        int t = (int)(i % T);
        /* next-token targets; the first 8 positions of each row are a "prompt" without targets */
        targets[i] = (t < 8 || t == T - 1) ? -1 : tokens[i + 1];
    }
    gpt_adamw_params opt = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};

    exitrl_backend *cpu = exitrl_backend_cpu_create();
    gpt_model mc;
    if (gpt_create(&mc, cpu, &cfg, B, T)) return 1;
    gpt_init_random(&mc, 1234);
    float *init = download_all(&mc, mc.master);

    float cpu_losses[STEPS];
    gpt_set_batch(&mc, tokens, targets, NULL, B, T);
    gpt_zero_grad(&mc);
    float cpu_loss1 = gpt_forward_backward(&mc, B, T);
    float *cpu_grads = download_all(&mc, mc.grads);
    /* no update has happened yet, so train() starts from the same weights */
    train(&mc, B, T, &opt, cpu_losses);
    printf("cpu: loss %.5f -> %.5f over %d steps\n", cpu_losses[0], cpu_losses[STEPS - 1], STEPS);
    CHECK(fabsf(cpu_losses[0] - cpu_loss1) < 1e-6f * cpu_loss1, "cpu: the same step gave %.7f then %.7f", cpu_loss1,
          cpu_losses[0]);
    CHECK(cpu_losses[STEPS - 1] < 0.95f * cpu_losses[0], "cpu: loss did not go down: %.5f -> %.5f", cpu_losses[0],
          cpu_losses[STEPS - 1]);

    for (int bf16 = 0; bf16 <= 1; bf16++) {
        const char *mode = bf16 ? "bf16" : "fp32";
        char why[256];
        exitrl_backend *gpu = exitrl_backend_cuda_create(0, !bf16, why, sizeof why);
        CHECK(gpu != NULL, "cuda backend (%s): %s", mode, why);
        if (!gpu) continue;
        gpt_model mg;
        if (gpt_create(&mg, gpu, &cfg, B, T)) {
            CHECK(0, "gpt_create on cuda (%s) failed", mode);
            gpu->destroy(gpu);
            continue;
        }
        gpt_load_params(&mg, init);
        gpt_set_batch(&mg, tokens, targets, NULL, B, T);

        /* one step: loss and gradients */
        gpt_zero_grad(&mg);
        float loss1 = gpt_forward_backward(&mg, B, T);
        float *grads = download_all(&mg, mg.grads);
        printf("%s: step-1 loss cpu %.6f cuda %.6f\n", mode, cpu_loss1, loss1);
        double loss_tol = bf16 ? 1e-2 : 1e-4;
        CHECK(fabs(loss1 - cpu_loss1) <= loss_tol * cpu_loss1, "%s: step-1 loss %.7f vs cpu %.7f", mode, loss1,
              cpu_loss1);
        if (!bf16) {
            for (int t = 0; t < GPT_NUM_PARAM_TENSORS; t++) {
                size_t off = mg.param_offsets[t], n = mg.param_sizes[t];
                double mx = 0.0;
                for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(cpu_grads[off + i]));
                size_t worst = 0;
                double r = test_max_err_ratio(grads + off, cpu_grads + off, n, 1e-3 * (mx > 0 ? mx : 1e-12), 1e-3,
                                              &worst);
                printf("  grad %-9s max|g| %.3e err/tol %.3g\n", test_tensor_names[t], mx, r);
                CHECK(r <= 1.0, "fp32: gradient of %s element %zu: cuda %.8g cpu %.8g", test_tensor_names[t], worst,
                      grads[off + worst], cpu_grads[off + worst]);
            }
        } else {
            double gn = l2(grads, mg.num_params), cn = l2(cpu_grads, mc.num_params);
            printf("  gradient norm cpu %.6f cuda %.6f\n", cn, gn);
            CHECK(fabs(gn - cn) <= 0.05 * cn, "bf16: gradient norm %.6f vs cpu %.6f", gn, cn);
        }
        free(grads);

        /* 20 AdamW steps from the same start (no update has happened yet) */
        float losses[STEPS];
        train(&mg, B, T, &opt, losses);
        double worst_gap = 0.0;
        for (int s = 0; s < STEPS; s++) {
            double band = bf16 ? 0.03 * cpu_losses[s] + 0.02 : 1e-3 * cpu_losses[s];
            double gap = fabs(losses[s] - cpu_losses[s]);
            worst_gap = fmax(worst_gap, gap / band);
            CHECK(gap <= band, "%s: step %d loss %.6f vs cpu %.6f (band %.4f)", mode, s + 1, losses[s], cpu_losses[s],
                  band);
        }
        printf("%s: loss %.5f -> %.5f over %d steps; worst gap/band %.3g\n", mode, losses[0], losses[STEPS - 1],
               STEPS, worst_gap);
        CHECK(losses[STEPS - 1] < 0.95f * losses[0], "%s: loss did not go down: %.5f -> %.5f", mode, losses[0],
              losses[STEPS - 1]);
        check_graph_steps(gpu, &cfg, B, T, tokens, targets, init, &opt, losses, &mg, mode);
        gpt_destroy(&mg);
        gpu->destroy(gpu);
    }

    free(cpu_grads);
    free(init);
    free(tokens);
    free(targets);
    gpt_destroy(&mc);
    cpu->destroy(cpu);
    return test_finish("test_gpu_train_step");
}
