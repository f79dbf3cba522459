/* Task-demonstration source for `exitrl pretrain --task`: rows packed with noisy-teacher
 * demonstrations (base, improve and diverge formats) of the training split; evaluation on the
 * held-out split by loss, and by greedy answers to base prompts scored by the domain's verifier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "completion.h"
#include "pretrain_source.h"
#include "rollout.h"
#include "tasks/task.h"
#include "tokenizer.h"

/* Held-out problems are drawn from this fixed stream, so every run is evaluated on the same ones. */
#define EVAL_STREAM_SEED 0x5EEDE7A1ULL

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

/* Greedy answers to n held-out base prompts: mean reward, share solved (reward 1) and share whose
 * completion is well-formed (ends with EOS, bytes only, parsed by the domain). */
static int eval_generate(task_source *ts, gpt_model *m, int n, int max_new, double *mean, double *solved,
                         double *valid) {
    const int cap = m->cfg.max_seq - 1;
    int *prompts = malloc(sizeof(int) * (size_t)n * cap), *lens = malloc(sizeof(int) * n);
    task_instance *insts = malloc(sizeof *insts * n);
    rollout_engine eng;
    rollout_output out = {0};
    int rc = -1, B = n < 128 ? n : 128;
    if (!prompts || !lens || !insts) goto done;
    int max_len = 0;
    for (int i = 0; i < n; i++) {
        char why[160];
        if (task_draw(ts->d, ts->knobs, TASK_SPLIT_HELDOUT, EVAL_STREAM_SEED, (uint64_t)i, &insts[i], why, sizeof why)) {
            fprintf(stderr, "exitrl: %s\n", why);
            goto done;
        }
        lens[i] = task_render_prompt(ts->d, &insts[i], TASK_PROMPT_BASE, NULL, 0, NULL, 0, prompts + (size_t)i * cap, cap);
        if (lens[i] <= 0) {
            fprintf(stderr, "exitrl: a held-out prompt does not fit the context of %d tokens\n", m->cfg.max_seq);
            goto done;
        }
        max_len = lens[i] > max_len ? lens[i] : max_len;
    }
    int S = max_len + max_new < m->cfg.max_seq ? max_len + max_new : m->cfg.max_seq;
    if (rollout_create(&eng, m, B, S)) goto done;
    if (rollout_output_alloc(&out, n, S, m->cfg.d_model)) {
        rollout_destroy(&eng);
        goto done;
    }
    struct exitrl_sampling greedy = {1.0f, 0, 1.0f, 1, TOK_EOS, 0};
    char err[256];
    if (rollout_generate(&eng, prompts, lens, cap, n, max_new, &greedy, 0, &out, err, sizeof err)) {
        fprintf(stderr, "exitrl: evaluation rollout failed: %s\n", err);
        rollout_destroy(&eng);
        goto done;
    }
    double sum = 0;
    int n_solved = 0, n_valid = 0;
    for (int i = 0; i < n; i++) {
        char answer[512];
        int len = completion_answer(out.tokens + (size_t)i * out.S + out.prompt_len[i], out.gen_len[i],
                                    out.hit_eos[i], answer, sizeof answer);
        float reward = len < 0 ? 0.0f : ts->d->score(&insts[i], answer, (size_t)len, NULL, 0);
        if (reward < 0) reward = 0;
        sum += reward;
        n_solved += reward >= 1.0f;
        n_valid += len >= 0 && ts->d->well_formed(&insts[i], answer, (size_t)len) == 1;
    }
    *mean = sum / n;
    *solved = (double)n_solved / n;
    *valid = (double)n_valid / n;
    rollout_destroy(&eng);
    rc = 0;
done:
    rollout_output_free(&out);
    free(prompts);
    free(lens);
    free(insts);
    return rc;
}

static void evaluate(pretrain_source *s, gpt_model *m, const exitrl_config *cfg, jsonl_line *j) {
    task_source *ts = s->ctx;
    int n_batches = (cfg->eval_instances + cfg->batch_size - 1) / cfg->batch_size;
    jsonl_num(j, "heldout_loss", heldout_loss(s, heldout_batch, m, cfg->batch_size, cfg->seq_len, n_batches,
                                              EVAL_STREAM_SEED));
    double mean, solved, valid;
    if (eval_generate(ts, m, cfg->eval_instances, cfg->max_new_tokens, &mean, &solved, &valid) == 0) {
        jsonl_num(j, "heldout_score", mean);
        jsonl_num(j, "heldout_solved", solved);
        jsonl_num(j, "format_valid", valid);
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
                                   (float)cfg->demo_p_feedback, (float)cfg->teacher_p_correct};
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
