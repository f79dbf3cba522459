/* A tiny model memorises one batch: mean loss per target token falls from ~ln(265) = 5.58 to below
 * 0.05 nats within 150 AdamW steps (lr 3e-3, no decay). A broken gradient anywhere stalls it.
 * A second model trained with gpt_train_step (the one-call step) must follow the same losses,
 * gradient norms and weights exactly: on the CPU both paths run the same ops in the same order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "test_util.h"

int main(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    gpt_config cfg = {2, 4, 64, 32, 265, 320};
    const int B = 4, T = 32, STEPS = 150;
    const float BOUND = 0.05f;
    gpt_model m;
    CHECK(gpt_create(&m, be, &cfg, B, T) == 0, "create");
    gpt_init_random(&m, 42);
    int tok[4 * 32], tgt[4 * 32];
    unsigned long long s = 99;
    for (int i = 0; i < B * T; i++) tok[i] = (int)((test_randf(&s, 1.0f) + 1.0f) * 132.0f) % 265;
    for (int i = 0; i < B * T; i++) tgt[i] = (i % T == T - 1) ? -1 : tok[i + 1]; /* last: no target */
    gpt_adamw_params opt = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    gpt_model m2;
    CHECK(gpt_create(&m2, be, &cfg, B, T) == 0, "create");
    gpt_init_random(&m2, 42);
    float first = 0, loss = 0;
    int reached = -1, mismatched = 0;
    for (int step = 0; step < STEPS; step++) {
        gpt_set_batch(&m, tok, tgt, NULL, B, T);
        gpt_zero_grad(&m);
        loss = gpt_forward_backward(&m, B, T);
        if (step == 0) first = loss;
        if (loss < BOUND && reached < 0) reached = step;
        float norm = gpt_update(&m, &opt);
        gpt_set_batch(&m2, tok, tgt, NULL, B, T);
        float norm2 = 0.0f, loss2 = gpt_train_step(&m2, B, T, &opt, &norm2);
        if (loss2 != loss || norm2 != norm) {
            if (!mismatched++)
                printf("step %d: gpt_train_step loss %.9g norm %.9g vs %.9g %.9g\n", step, loss2, norm2, loss, norm);
        }
    }
    printf("loss %.4f -> %.4f, below %.2f at step %d\n", first, loss, BOUND, reached);
    CHECK(mismatched == 0, "gpt_train_step differs from zero_grad + forward_backward + update at %d steps", mismatched);
    CHECK(memcmp(m.master, m2.master, m.num_params * sizeof(float)) == 0,
          "gpt_train_step left different weights"); /* CPU backend memory is host memory */
    CHECK(m2.adam_step == STEPS, "gpt_train_step took %d optimizer steps, want %d", m2.adam_step, STEPS);
    gpt_destroy(&m2);
    CHECK(first > 5.0f && first < 6.0f, "initial loss %.3f should be near ln(265) = 5.58", first);
    CHECK(reached >= 0, "loss did not fall below %.2f within %d steps (last %.4f)", BOUND, STEPS, loss);
    gpt_destroy(&m);
    be->destroy(be);
    return test_finish("test_overfit");
}
