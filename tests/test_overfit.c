/* A tiny model memorises one batch: mean loss per target token falls from ~ln(265) = 5.58 to below
 * 0.05 nats within 150 AdamW steps (lr 3e-3, no decay). A broken gradient anywhere stalls it. */
#include <stdlib.h>

#include "model.h"
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
    float first = 0, loss = 0;
    int reached = -1;
    for (int step = 0; step < STEPS; step++) {
        gpt_set_batch(&m, tok, tgt, NULL, B, T);
        gpt_zero_grad(&m);
        loss = gpt_forward_backward(&m, B, T);
        if (step == 0) first = loss;
        if (loss < BOUND && reached < 0) reached = step;
        gpt_update(&m, &opt);
    }
    printf("loss %.4f -> %.4f, below %.2f at step %d\n", first, loss, BOUND, reached);
    CHECK(first > 5.0f && first < 6.0f, "initial loss %.3f should be near ln(265) = 5.58", first);
    CHECK(reached >= 0, "loss did not fall below %.2f within %d steps (last %.4f)", BOUND, STEPS, loss);
    gpt_destroy(&m);
    be->destroy(be);
    return test_finish("test_overfit");
}
