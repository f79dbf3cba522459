#include "pretrain/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pretrain/demo_source.h"
#include "pretrain/text_source.h"

double heldout_loss(pretrain_source *s, batch_fn make_batch, gpt_model *m, int B, int T, int n_batches,
                    uint64_t seed) {
    int *tokens = malloc(sizeof(int) * B * T), *targets = malloc(sizeof(int) * B * T);
    float *weights = malloc(sizeof(float) * B * T);
    if (!tokens || !targets || !weights) {
        free(tokens);
        free(targets);
        free(weights);
        return -1.0;
    }
    rng_state r;
    rng_seed(&r, seed); /* the same batches at every evaluation, so the curve is comparable */
    double sum = 0.0;
    for (int i = 0; i < n_batches; i++) {
        make_batch(s, &r, tokens, targets, B, T);
        /* The batch's mean loss, in chunks of the model's capacity (a data-parallel rank holds a
         * share of the batch size). */
        long n_targets = 0;
        for (long j = 0; j < (long)B * T; j++) n_targets += targets[j] >= 0;
        for (long j = 0; j < (long)B * T; j++) weights[j] = targets[j] >= 0 ? 1.0f / (float)(n_targets ? n_targets : 1) : 0.0f;
        for (int r0 = 0; r0 < B; r0 += m->max_B) {
            int rows = B - r0 < m->max_B ? B - r0 : m->max_B;
            size_t off = (size_t)r0 * T;
            gpt_set_batch(m, tokens + off, targets + off, weights + off, rows, T);
            gpt_forward(m, rows, T);
            sum += gpt_weighted_loss(m, rows, T);
        }
    }
    free(tokens);
    free(targets);
    free(weights);
    return sum / n_batches;
}

int pretrain_source_open(pretrain_source *s, const exitrl_config *cfg) {
    memset(s, 0, sizeof *s);
    if (strcmp(cfg->task, "none")) return pretrain_source_open_task(s, cfg);
    return pretrain_source_open_text(s, cfg);
}
