#include "pretrain_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_text.h"

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

static void text_train_batch(pretrain_source *s, rng_state *r, int *tokens, int *targets, int B, int T) {
    text_data_batch(s->ctx, 0, r, tokens, targets, B, T);
}
static void text_heldout_batch(pretrain_source *s, rng_state *r, int *tokens, int *targets, int B, int T) {
    text_data_batch(s->ctx, 1, r, tokens, targets, B, T);
}

static void text_evaluate(pretrain_source *s, gpt_model *m, const exitrl_config *cfg, jsonl_line *j) {
    int n = (cfg->eval_instances + cfg->batch_size - 1) / cfg->batch_size;
    jsonl_num(j, "heldout_loss",
              heldout_loss(s, text_heldout_batch, m, cfg->batch_size, cfg->seq_len, n, (uint64_t)cfg->seed));
}

static void text_close(pretrain_source *s) {
    if (s->ctx) text_data_free(s->ctx);
    free(s->ctx);
    s->ctx = NULL;
}

int pretrain_source_open(pretrain_source *s, const exitrl_config *cfg) {
    memset(s, 0, sizeof *s);
    if (strcmp(cfg->task, "none")) return pretrain_source_open_task(s, cfg);
    text_data *d = calloc(1, sizeof *d);
    if (!d || text_data_load(d, cfg->data, cfg->seq_len)) {
        free(d);
        return 1;
    }
    s->ctx = d;
    s->batch = text_train_batch;
    s->evaluate = text_evaluate;
    s->close = text_close;
    snprintf(s->describe, sizeof s->describe, "text %s (%zu bytes)", cfg->data, d->n);
    return 0;
}
