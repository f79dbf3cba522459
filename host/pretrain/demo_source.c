/* Task-demonstration source for `exitrl pretrain --task`: rows packed with noisy-teacher
 * demonstrations (base, improve and diverge formats) of the training split; evaluation on the
 * held-out split by loss, and by greedy answers to base prompts scored by the domain's verifier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pretrain/demo_source.h"
#include "eval/task_eval.h"
#include "tasks/task.h"
#include "model/tokenizer.h"

typedef struct {
    const task_domain *d;
    int32_t knobs[TASK_MAX_KNOBS];
    task_demo_options demo;
    uint64_t stream_seed;
    int *ex_tok, *ex_tgt; /* one example, capacity T */
    int T;
} task_source;

/* Packs consecutive demonstrations of `split` into each row; the unused tail is padding with no
 * target. An example that does not fit the row's remaining space is dropped (drawn, not used). */
static void fill_rows(task_source *ts, int split, rng_state *r, int *tokens, int *targets, int B, int T) {
    for (int b = 0; b < B; b++) {
        int used = 0;
        for (int attempt = 0; attempt < 64 && used < T; attempt++) {
            task_instance inst;
            char why[160];
            if (task_draw(ts->d, ts->knobs, split, ts->stream_seed, rng_u64(r), &inst, why, sizeof why)) {
                fprintf(stderr, "exitrl: %s\n", why);
                exit(1);
            }
            task_rng trng = task_rng_seeded(rng_u64(r));
            int n = task_make_demo(ts->d, &inst, &trng, &ts->demo, ts->ex_tok, ts->ex_tgt, T);
            if (n <= 0 || used + n > T) break;
            memcpy(tokens + (size_t)b * T + used, ts->ex_tok, sizeof(int) * n);
            memcpy(targets + (size_t)b * T + used, ts->ex_tgt, sizeof(int) * n);
            used += n;
        }
        for (int t = used; t < T; t++) {
            tokens[(size_t)b * T + t] = TOK_PAD;
            targets[(size_t)b * T + t] = -1;
        }
    }
}

static void train_batch(pretrain_source *s, rng_state *r, int *tokens, int *targets, int B, int T) {
    fill_rows(s->ctx, TASK_SPLIT_TRAIN, r, tokens, targets, B, T);
}
static void heldout_batch(pretrain_source *s, rng_state *r, int *tokens, int *targets, int B, int T) {
    fill_rows(s->ctx, TASK_SPLIT_HELDOUT, r, tokens, targets, B, T);
}

static void evaluate(pretrain_source *s, gpt_model *m, const exitrl_config *cfg, jsonl_line *j) {
    task_source *ts = s->ctx;
    int n_batches = (cfg->eval_instances + cfg->batch_size - 1) / cfg->batch_size;
    jsonl_num(j, "heldout_loss", heldout_loss(s, heldout_batch, m, cfg->batch_size, cfg->seq_len, n_batches,
                                              TASK_EVAL_STREAM_SEED));
    task_eval_base_result r;
    if (task_eval_base(ts->d, ts->knobs, m, cfg->eval_instances, cfg->max_new_tokens, &r) == 0) {
        jsonl_num(j, "heldout_score", r.score);
        jsonl_num(j, "heldout_solved", r.solved);
        jsonl_num(j, "format_valid", r.valid);
    }
}

static void close_source(pretrain_source *s) {
    task_source *ts = s->ctx;
    if (ts) {
        free(ts->ex_tok);
        free(ts->ex_tgt);
    }
    free(ts);
    s->ctx = NULL;
}

int pretrain_source_open_task(pretrain_source *s, const exitrl_config *cfg) {
    const task_domain *d = task_domain_find(cfg->task);
    char why[256];
    if (!d) {
        fprintf(stderr, "exitrl: unknown task '%s'\n", cfg->task);
        return 2;
    }
    task_source *ts = calloc(1, sizeof *ts);
    if (!ts) return 1;
    s->ctx = ts;
    s->close = close_source;
    ts->d = d;
    ts->T = cfg->seq_len;
    ts->stream_seed = (uint64_t)cfg->seed;
    ts->demo = (task_demo_options){(float)cfg->demo_p_improve, (float)cfg->demo_p_diverge,
                                   (float)cfg->demo_p_feedback, (float)cfg->teacher_p_correct,
                                   cfg->demo_targets, (float)cfg->demo_p_shown_correct};
    if (cfg->demo_p_improve + cfg->demo_p_diverge > 1.0) {
        fprintf(stderr, "exitrl: config keys 'demo_p_improve' + 'demo_p_diverge' = %g must be at most 1\n",
                cfg->demo_p_improve + cfg->demo_p_diverge);
        return 2;
    }
    if (task_knobs_parse(d, cfg->task_knobs, ts->knobs, why, sizeof why)) {
        fprintf(stderr, "exitrl: config key 'task_knobs': %s\n", why);
        return 2;
    }
    ts->ex_tok = malloc(sizeof(int) * cfg->seq_len);
    ts->ex_tgt = malloc(sizeof(int) * cfg->seq_len);
    if (!ts->ex_tok || !ts->ex_tgt) return 1;
    /* The longest demonstration format must fit a row: try a few and say so if they do not. */
    for (int i = 0; i < 32; i++) {
        task_instance inst;
        if (task_draw(d, ts->knobs, TASK_SPLIT_TRAIN, ts->stream_seed, (uint64_t)i, &inst, why, sizeof why)) {
            fprintf(stderr, "exitrl: %s\n", why);
            return 2;
        }
        task_rng trng = task_rng_seeded((uint64_t)i);
        task_demo_options worst = ts->demo;
        worst.p_improve = 1.0f, worst.p_diverge = 0.0f, worst.p_feedback = 1.0f;
        if (task_make_demo(d, &inst, &trng, &worst, ts->ex_tok, ts->ex_tgt, cfg->seq_len) == TASK_ERR_FIT) {
            fprintf(stderr, "exitrl: config key 'seq_len' = %d is too short for %s demonstrations with these knobs\n",
                    cfg->seq_len, d->name);
            return 2;
        }
    }
    s->batch = train_batch;
    s->evaluate = evaluate;
    snprintf(s->describe, sizeof s->describe, "task %s demonstrations (knobs '%s')", d->name,
             cfg->task_knobs[0] ? cfg->task_knobs : "defaults");
    return 0;
}
