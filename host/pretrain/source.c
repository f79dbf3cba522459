#include "pretrain/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pretrain/demo_source.h"
#include "pretrain/text_source.h"

double heldout_loss(pretrain_source *s, batch_fn make_batch, gpt_model *m, int B, int T, int n_batches,
                    uint64_t seed) {
    int *tokens = malloc(sizeof(int) * B * T), *targets = malloc(sizeof(int) * B * T);
    if (!tokens || !targets) {
        free(tokens);
        free(targets);
        return -1.0;
    }
    rng_state r;
    rng_seed(&r, seed); /* the same batches at every evaluation, so the curve is comparable */
    double sum = 0.0;
    for (int i = 0; i < n_batches; i++) {
        make_batch(s, &r, tokens, targets, B, T);
        gpt_set_batch(m, tokens, targets, NULL, B, T);
        gpt_forward(m, B, T);
        sum += gpt_weighted_loss(m, B, T);
    }
    free(tokens);
    free(targets);
    return sum / n_batches;
}

int pretrain_source_open(pretrain_source *s, const exitrl_config *cfg) {
    memset(s, 0, sizeof *s);
    if (strcmp(cfg->task, "none")) return pretrain_source_open_task(s, cfg);
    return pretrain_source_open_text(s, cfg);
}
