#include "pretrain/text_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT_BYTES ((size_t)1 << 32)

int text_data_load(text_data *d, const char *path, int T) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "exitrl: cannot open data file '%s': %s\n", path, strerror(errno));
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    if (size < 0 || (size_t)size > MAX_TEXT_BYTES) {
        fprintf(stderr, "exitrl: data file '%s' is too large (limit %zu bytes)\n", path, MAX_TEXT_BYTES);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)size, n_train = n - n / 10;
    if (n_train < (size_t)T + 1 || n - n_train < (size_t)T + 1) {
        fprintf(stderr,
                "exitrl: data file '%s' has %zu bytes; with seq_len = %d each split (90%% train, 10%% "
                "held out) needs at least %d bytes, so at least %zu bytes in all\n",
                path, n, T, T + 1, (size_t)(T + 1) * 10);
        fclose(f);
        return -1;
    }
    d->bytes = malloc(n);
    if (!d->bytes || fread(d->bytes, 1, n, f) != n) {
        fprintf(stderr, "exitrl: cannot read data file '%s'\n", path);
        free(d->bytes);
        d->bytes = NULL;
        fclose(f);
        return -1;
    }
    fclose(f);
    d->n = n;
    d->n_train = n_train;
    return 0;
}

void text_data_free(text_data *d) {
    free(d->bytes);
    memset(d, 0, sizeof *d);
}

void text_data_batch(const text_data *d, int split, rng_state *r, int *tokens, int *targets, int B, int T) {
    size_t lo = split ? d->n_train : 0, hi = split ? d->n : d->n_train;
    for (int b = 0; b < B; b++) {
        size_t start = lo + (size_t)rng_below(r, hi - lo - (size_t)T);
        for (int t = 0; t < T; t++) {
            tokens[b * T + t] = d->bytes[start + t];
            targets[b * T + t] = d->bytes[start + t + 1];
        }
    }
}

/* ---- the text source of exitrl pretrain ---- */

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

int pretrain_source_open_text(pretrain_source *s, const exitrl_config *cfg) {
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
