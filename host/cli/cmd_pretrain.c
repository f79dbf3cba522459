/* `exitrl pretrain`: supervised next-token training (plain text, or a task domain's demonstrations
 * for the warm start), with warmup + cosine learning rate, clipping, metrics, checkpoints and a
 * clean stop on SIGINT. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "dist/dist.h"
#include "run/config.h"
#include "model/model_io.h"
#include "pretrain/source.h"
#include "model/rng.h"
#include "run/run_log.h"
#include "run/run_loop.h"
#include "run/setup.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: exitrl pretrain [--config FILE] [--key value ...]\n"
            "\n"
            "Supervised next-token training of the policy, either on a text file (--data FILE) or on\n"
            "noisy-teacher demonstrations of a task domain (--task arith|countdown|knapsack|ledger), the\n"
            "warm start before RL. Writes <out_dir>/<name>/metrics.jsonl (one JSON object per logged\n"
            "step), config.txt and checkpoint.bin (every ckpt_every steps, at the end and on Ctrl-C).\n"
            "--resume CKPT continues a run exactly, with the run's configuration from the checkpoint (the\n"
            "command line may change steps, the log, eval and checkpoint cadence, out_dir, name, device,\n"
            "threads and progress); --init CKPT starts from its weights.\n"
            "Exit codes: 0 done, 1 runtime error, 2 usage error, 130 interrupted (checkpoint saved).\n\n");
    config_print_help(f, CONFIG_GROUP_RUN | CONFIG_GROUP_MODEL | CONFIG_GROUP_DATA | CONFIG_GROUP_OPTIM | CONFIG_GROUP_LOG);
}

/* Linear warmup to lr, then cosine decay to min_lr_frac * lr at the last step. */
static double lr_at(const exitrl_config *c, int step) {
    if (step < c->warmup_steps) return c->lr * (step + 1) / c->warmup_steps;
    int decay_steps = c->steps - c->warmup_steps;
    double progress = decay_steps > 0 ? (double)(step - c->warmup_steps) / decay_steps : 1.0;
    double min_lr = c->lr * c->min_lr_frac;
    return min_lr + 0.5 * (c->lr - min_lr) * (1.0 + cos(3.14159265358979323846 * progress));
}

/* State beyond the model that an exact resume needs. */
typedef struct {
    int64_t step;
    rng_state data_rng;
} pretrain_state;

/* Everything the loop's hooks touch. */
typedef struct {
    const exitrl_config *cfg;
    gpt_model *model;
    pretrain_source *source;
    pretrain_state state;
    FILE *metrics;
    const char *dir;
    int *tokens, *targets;     /* [B*T] the (global) batch being built */
    float *weights;            /* [B/ranks * T] loss weights of this rank's rows (several ranks) */
    gpt_adamw_params opt;
    double t_start;
} pretrain_run;

static int pretrain_step(void *ctx, char *text, size_t text_len) {
    pretrain_run *p = ctx;
    const exitrl_config *cfg = p->cfg;
    const int B = cfg->batch_size, T = cfg->seq_len;
    double t0 = now_seconds(), comm0 = dist_comm_seconds();
    p->opt.lr = (float)lr_at(cfg, (int)p->state.step);
    p->source->batch(p->source, &p->state.data_rng, p->tokens, p->targets, B, T);
    float norm = 0.0f, loss;
    if (dist_size() == 1) {
        gpt_set_batch(p->model, p->tokens, p->targets, NULL, B, T);
        loss = gpt_train_step(p->model, B, T, &p->opt, &norm);
    } else {
        /* Every rank drew the whole global batch (same stream); each trains on its rows, with the
         * loss weights of the global batch, so the summed gradient is the one-process gradient. */
        int64_t lo, hi, n_targets = 0;
        dist_share(B, &lo, &hi);
        for (int64_t i = 0; i < (int64_t)B * T; i++) n_targets += p->targets[i] >= 0;
        const int64_t rows = hi - lo;
        for (int64_t i = 0; i < rows * T; i++)
            p->weights[i] = p->targets[lo * T + i] >= 0 ? 1.0f / (float)(n_targets ? n_targets : 1) : 0.0f;
        gpt_set_batch(p->model, p->tokens + lo * T, p->targets + lo * T, p->weights, (int)rows, T);
        gpt_zero_grad(p->model);
        loss = gpt_forward_backward(p->model, (int)rows, T);
        dist_sum_grads(p->model, "pretrain gradients");
        dist_sum_f32(&loss, 1, "pretrain loss");
        norm = gpt_update(p->model, &p->opt);
    }
    p->state.step++;
    double dt = now_seconds() - t0, tok_rate = B * T / dt;
    if (!isfinite(loss) || !isfinite(norm)) {
        fprintf(stderr, "\nexitrl: loss or gradient norm became non-finite at step %lld (loss %g, norm %g); "
                        "the last checkpoint in %s is intact. Try a lower lr.\n",
                (long long)p->state.step, loss, norm, p->dir);
        return 1;
    }
    if (p->state.step % cfg->log_every == 0 || p->state.step == cfg->steps || p->state.step == 1) {
        jsonl_line j;
        jsonl_begin(&j, p->metrics);
        jsonl_int(&j, "step", p->state.step);
        jsonl_num(&j, "loss", loss);
        jsonl_num(&j, "lr", p->opt.lr);
        jsonl_num(&j, "grad_norm", norm);
        jsonl_num(&j, "tokens_per_s", tok_rate);
        jsonl_num(&j, "step_ms", dt * 1e3);
        if (dist_size() > 1) jsonl_num(&j, "comm_ms", (dist_comm_seconds() - comm0) * 1e3);
        jsonl_num(&j, "elapsed_s", now_seconds() - p->t_start);
        jsonl_end(&j);
    }
    snprintf(text, text_len, "loss %.4f lr %.2e %.0f tok/s", loss, p->opt.lr, tok_rate);
    return 0;
}

static void pretrain_evaluate(void *ctx) {
    pretrain_run *p = ctx;
    jsonl_line j;
    jsonl_begin(&j, p->metrics);
    jsonl_int(&j, "step", p->state.step);
    p->source->evaluate(p->source, p->model, p->cfg, &j);
    jsonl_end(&j);
    fprintf(stderr, "eval at step %lld: %s}\n", (long long)p->state.step, j.buf);
}

static int pretrain_save(void *ctx, const char *dir) {
    pretrain_run *p = ctx;
    return run_save_checkpoint(dir, p->model, p->cfg, (ckpt_section){"pretrain_state", &p->state, sizeof p->state}, NULL, 0);
}

/* The model config and, with --init / --resume, the open checkpoint it comes from; on --resume the
 * run's configuration from that checkpoint too (run_resume_config). Returns 0 or the exit code
 * after a message. */
static int pretrain_model_config(exitrl_config *cfg, ckpt_reader *ck, gpt_config *mc) {
    char err[512];
    const char *ckpt_path = cfg->resume[0] ? cfg->resume : cfg->init;
    if (!ckpt_path[0]) return setup_model_config(cfg, mc);
    if (ckpt_open(ck, ckpt_path, err, sizeof err) || model_read_config(ck, mc, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        return 1;
    }
    if (cfg->resume[0] && ckpt_section_size(ck, "pretrain_state") < 0) {
        fprintf(stderr, "exitrl: %s has no section 'pretrain_state': not an exitrl pretrain checkpoint\n", ckpt_path);
        return 1;
    }
    return cfg->resume[0] ? run_resume_config(cfg, ck, mc) : 0;
}

/* The pretrain-specific rules a parsed config must follow. Returns 0, or 2 after a message. */
static int check_config(const exitrl_config *cfg, const gpt_config *mc) {
    if (!cfg->data[0] && !strcmp(cfg->task, "none")) {
        fprintf(stderr, "exitrl pretrain: give --data FILE or --task NAME (see --help)\n");
        return 2;
    }
    if (cfg->data[0] && strcmp(cfg->task, "none")) {
        fprintf(stderr, "exitrl pretrain: --data and --task exclude each other\n");
        return 2;
    }
    if (cfg->seq_len > mc->max_seq) {
        fprintf(stderr, "exitrl: config key 'seq_len' = %d is out of range: the model's max_seq is %d\n",
                cfg->seq_len, mc->max_seq);
        return 2;
    }
    return 0;
}

/* Weights (and for --resume the optimizer and the loop state) from the checkpoint, or a random
 * initialisation. Returns 0, or -1 after a message. */
static int pretrain_load(const exitrl_config *cfg, ckpt_reader *ck, gpt_model *m, pretrain_state *st) {
    char err[512];
    const char *ckpt_path = cfg->resume[0] ? cfg->resume : cfg->init;
    rng_seed(&st->data_rng, (uint64_t)cfg->seed ^ 0xDA7A);
    if (!ckpt_path[0]) {
        gpt_init_random(m, (uint64_t)cfg->seed);
        return 0;
    }
    int rc = model_load(ck, m, cfg->resume[0] != 0, err, sizeof err);
    if (!rc && cfg->resume[0]) rc = ckpt_read(ck, "pretrain_state", st, sizeof *st, err, sizeof err);
    if (!rc && cfg->resume[0]) {
        const char *bad = st->step < 0 || st->step > cfg->steps ? "field 'step' is outside [0, steps]"
                        : !rng_state_valid(&st->data_rng)        ? "field 'data_rng' is all zero (not a xoshiro256** state)"
                        : m->adam_step != st->step ? "field 'step' differs from section 'adam_step' (one AdamW step a step)"
                                                   : NULL;
        if (bad) {
            snprintf(err, sizeof err, "%s: section 'pretrain_state' %s (step %lld, steps %d, adam_step %d)", ckpt_path,
                     bad, (long long)st->step, cfg->steps, m->adam_step);
            rc = -1;
        }
    }
    if (rc) fprintf(stderr, "exitrl: %s\n", err);
    return rc;
}

int cmd_pretrain(int argc, char **argv) {
    exitrl_config cfg;
    int rc = command_config(argc, argv, usage, &cfg);
    if (rc) return rc < 0 ? 0 : rc;
    if (cfg.resume[0] && cfg.init[0]) {
        fprintf(stderr, "exitrl pretrain: --resume and --init exclude each other\n");
        return 2;
    }
    /* The model config comes from the checkpoint when there is one, else from the preset. */
    gpt_config mc;
    ckpt_reader ck = {0};
    pretrain_source src = {0};
    if ((rc = pretrain_model_config(&cfg, &ck, &mc)) || (rc = command_config_error(check_config(&cfg, &mc), &cfg)) ||
        (rc = command_config_error(pretrain_source_open(&src, &cfg), &cfg))) {
        ckpt_close(&ck);
        if (src.close) src.close(&src);
        return rc;
    }
    run_record_model(&cfg, &mc);
    exitrl_backend *be = setup_backend(&cfg);
    const int B = cfg.batch_size, T = cfg.seq_len;
    gpt_model m = {0};
    pretrain_run p = {&cfg, &m, &src, .opt = {0, (float)cfg.beta1, (float)cfg.beta2, (float)cfg.adam_eps,
                                              (float)cfg.weight_decay, (float)cfg.grad_clip}};
    char dir[600];
    int exit_code = 1;
    if (B % dist_size()) {
        fprintf(stderr, "exitrl pretrain: batch_size %d is not divisible by the %d ranks (each rank trains on an "
                        "equal share of the global batch)\n", B, dist_size());
        exit_code = 2;
        goto out;
    }
    if (!be || gpt_create(&m, be, &mc, B / dist_size(), T)) goto out;
    rc = pretrain_load(&cfg, &ck, &m, &p.state);
    ckpt_close(&ck);
    if (rc || run_open(&cfg, dir, sizeof dir, &p.metrics)) goto out;
    p.dir = dir;
    if (dist_is_root())
        fprintf(stderr, "exitrl pretrain: %s backend, %zu parameters (L=%d H=%d C=%d), batch %d x %d%s, %s, "
                        "steps %lld..%d -> %s\n",
                be->name, m.num_params, mc.n_layer, mc.n_head, mc.d_model, B, T, dist_note(), src.describe,
                (long long)p.state.step, cfg.steps, dir);
    p.tokens = malloc(sizeof(int) * B * T);
    p.targets = malloc(sizeof(int) * B * T);
    p.weights = malloc(sizeof(float) * B * T);
    if (!p.tokens || !p.targets || !p.weights) {
        fprintf(stderr, "exitrl: out of host memory for the batch\n");
        goto out;
    }
    p.t_start = now_seconds();
    run_loop_hooks hooks = {"pretrain", "step", &p.state.step, cfg.steps, cfg.eval_every, cfg.ckpt_every, 1,
                            cfg.progress, &p, pretrain_step, pretrain_evaluate, pretrain_save, p.metrics};
    exit_code = run_loop(&hooks, dir);
    if (exit_code == 0 && dist_is_root())
        fprintf(stderr, "exitrl pretrain: done, %lld steps in %.1fs; checkpoint %s/checkpoint.bin\n",
                (long long)p.state.step, now_seconds() - p.t_start, dir);
out:
    ckpt_close(&ck);
    free(p.tokens);
    free(p.targets);
    free(p.weights);
    if (p.metrics) fclose(p.metrics);
    gpt_destroy(&m);
    if (be) be->destroy(be);
    src.close(&src);
    return exit_code;
}
