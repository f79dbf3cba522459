/* `exitrl train`: GRPO / ExIt from a warm-started checkpoint, with metrics per iteration, periodic
 * held-out evaluation, atomic checkpoints (weights, optimizer, reference policy, buffer, RNG) and
 * an exact resume. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "dist/dist.h"
#include "rl/trainer.h"
#include "model/model_io.h"
#include "run/run_log.h"
#include "run/run_loop.h"
#include "run/setup.h"
#include "eval/task_eval.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: exitrl train --init CKPT [--config FILE] [--key value ...]\n"
            "       exitrl train --resume CKPT [--key value ...]\n"
            "\n"
            "RL on a task domain with the method ladder of the ExIt paper (method = grpo | curriculum |\n"
            "improve | diverge | exit), starting from a warm-started checkpoint (exitrl pretrain --task).\n"
            "Writes <out_dir>/<name>/metrics.jsonl (one object per iteration: rewards, scores, buffer,\n"
            "KL, tokens/s, time per phase; held-out evaluations every eval_every iterations) and\n"
            "checkpoint.bin (every ckpt_every iterations, at the end and on Ctrl-C). --resume continues\n"
            "exactly, with the run's configuration from the checkpoint: the command line may change only\n"
            "iterations, the log, eval and checkpoint cadence, out_dir, name, device, threads, progress and\n"
            "max_skips. An update with a non-finite loss, KL, advantage or gradient norm is skipped (weights\n"
            "and optimizer untouched, 'skipped' in metrics.jsonl); max_skips such iterations in a row stop\n"
            "the run. Exit codes: 0 done, 1 runtime error, 2 usage error, 130 interrupted (saved).\n\n");
    config_print_help(f, CONFIG_GROUP_RUN | CONFIG_GROUP_DATA | CONFIG_GROUP_OPTIM | CONFIG_GROUP_LOG | CONFIG_GROUP_RL);
}

typedef struct {
    int64_t iteration;
    rng_state rng;
} train_state;

static int save(const char *dir, rl_trainer *t, const train_state *st, const exitrl_config *cfg) {
    size_t buf_bytes = task_buffer_serialized_size(&t->buffer);
    void *buf = malloc(buf_bytes);
    float *ref = t->ref.master ? malloc(sizeof(float) * t->model->num_params) : NULL;
    if (!buf || (t->ref.master && !ref)) {
        free(buf), free(ref);
        fprintf(stderr, "exitrl: out of memory writing a checkpoint\n");
        return -1;
    }
    task_buffer_serialize(&t->buffer, buf, buf_bytes);
    if (ref) t->model->backend->download(t->model->backend, ref, t->ref.master, sizeof(float) * t->model->num_params);
    ckpt_section more[2] = {{"exit_buffer", buf, buf_bytes}, {"ref_params", ref, sizeof(float) * t->model->num_params}};
    int rc = run_save_checkpoint(dir, t->model, cfg, (ckpt_section){"train_state", st, sizeof *st}, more, ref ? 2 : 1);
    free(buf), free(ref);
    return rc;
}

static int bad_field(char *err, size_t err_len, const ckpt_reader *r, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad_field(char *err, size_t err_len, const ckpt_reader *r, const char *section, const char *fmt, ...) {
    int n = snprintf(err, err_len, "%s: section '%s' ", r->path, section);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < err_len) vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The task buffer's entries against what only the run knows: the task domain and knobs, the
 * method (grpo keeps none; curriculum keeps bare base tasks; the others histories of at least one
 * attempt) and the iteration reached (nothing sampled or inserted at or after it). */
static int check_buffer(const ckpt_reader *r, const rl_trainer *t, int64_t iteration, char *err, size_t err_len) {
    const task_buffer *b = &t->buffer;
    const int method = t->cfg->method;
    if (b->size && (method == METHOD_GRPO || iteration == 0))
        return bad_field(err, err_len, r, "exit_buffer", "holds %d entries, but %s", b->size,
                         iteration == 0 ? "no iteration has run" : "method grpo keeps none");
    if (b->clock > (uint64_t)(iteration ? iteration - 1 : 0)) /* the last iteration inserted at iteration - 1 */
        return bad_field(err, err_len, r, "exit_buffer", "field 'clock' = %llu is not below the iterations done (%lld)",
                         (unsigned long long)b->clock, (long long)iteration);
    for (int i = 0; i < b->size; i++) {
        const buffer_entry *e = task_buffer_entry(b, i);
        if (e->task.domain != t->domain->id || memcmp(e->task.knobs, t->knobs, sizeof t->knobs))
            return bad_field(err, err_len, r, "exit_buffer",
                             "entry %d: its task is not a %s task with the run's task_knobs", i, t->domain->name);
        if (method == METHOD_CURRICULUM ? e->depth != 0 : e->depth < 1)
            return bad_field(err, err_len, r, "exit_buffer", "entry %d: depth %d, but method %s keeps %s", i,
                             (int)e->depth, config_choice_name("method", method),
                             method == METHOD_CURRICULUM ? "base tasks (depth 0)" : "at least one attempt");
    }
    return 0;
}

/* Everything an exact resume reads beyond the model, each field checked before use. */
static int restore(ckpt_reader *r, rl_trainer *t, train_state *st, char *err, size_t err_len) {
    const exitrl_config *cfg = t->cfg;
    if (ckpt_read(r, "train_state", st, sizeof *st, err, err_len)) return -1;
    if (st->iteration < 0 || st->iteration > cfg->iterations)
        return bad_field(err, err_len, r, "train_state", "field 'iteration' = %lld is outside [0, iterations = %d]",
                         (long long)st->iteration, cfg->iterations);
    if (!rng_state_valid(&st->rng))
        return bad_field(err, err_len, r, "train_state", "field 'rng' is all zero (not a xoshiro256** state)");
    /* Each iteration's GRPO update takes grpo_update_steps optimizer steps (fewer when skipped). */
    const int64_t max_steps =
        st->iteration * grpo_update_steps(cfg->prompts * cfg->group_size, cfg->minibatches, cfg->epochs);
    if (t->model->adam_step > max_steps)
        return bad_field(err, err_len, r, "adam_step", "= %d exceeds the %lld optimizer steps of %lld iterations",
                         t->model->adam_step, (long long)max_steps, (long long)st->iteration);
    int64_t size = ckpt_section_size(r, "exit_buffer");
    if (size < 0 || size > (int64_t)1 << 32)
        return bad_field(err, err_len, r, "exit_buffer", "is %s", size < 0 ? "missing" : "larger than 4 GiB");
    void *buf = malloc((size_t)size);
    if (!buf) return snprintf(err, err_len, "out of memory reading the buffer"), -1;
    char why[300];
    int rc = ckpt_read(r, "exit_buffer", buf, (uint64_t)size, err, err_len);
    if (!rc && task_buffer_deserialize(&t->buffer, buf, (size_t)size, why, sizeof why))
        rc = bad_field(err, err_len, r, "exit_buffer", "%s", why);
    free(buf);
    if (!rc) rc = check_buffer(r, t, st->iteration, err, err_len);
    if (rc || !t->ref.master) return rc;
    float *ref = malloc(sizeof(float) * t->model->num_params);
    if (!ref) return snprintf(err, err_len, "out of memory reading the reference policy"), -1;
    rc = ckpt_read(r, "ref_params", ref, sizeof(float) * t->model->num_params, err, err_len);
    if (!rc) rc = model_check_weights(r, "ref_params", t->model, ref, err, err_len);
    if (!rc) {
        exitrl_backend *be = t->model->backend;
        be->upload(be, t->ref.master, ref, sizeof(float) * t->model->num_params);
        be->f32_to_act(be, t->ref.params, t->ref.master, t->model->num_params);
    }
    free(ref);
    return rc;
}

static void log_iteration(FILE *metrics, int64_t it, const rl_iter_stats *s, const rl_trainer *t) {
    task_buffer_stats bs;
    task_buffer_get_stats(&t->buffer, &bs);
    jsonl_line j;
    jsonl_begin(&j, metrics);
    jsonl_int(&j, "iteration", it);
    jsonl_num(&j, "reward_mean", s->reward_mean);
    jsonl_num(&j, "reward_std", s->reward_std);
    jsonl_num(&j, "quality_mean", s->quality_mean);
    jsonl_num(&j, "zero_var_frac", s->zero_var_frac);
    jsonl_num(&j, "score_mean", s->score_mean);
    jsonl_num(&j, "score_max", s->score_max);
    jsonl_int(&j, "buffer_size", bs.size);
    jsonl_num(&j, "buffer_mean_score", bs.mean_score);
    jsonl_num(&j, "buffer_mean_depth", bs.mean_depth);
    jsonl_int(&j, "buffer_max_depth", bs.max_depth);
    jsonl_num(&j, "replay_share", s->replay_share);
    jsonl_num(&j, "diverge_share", s->diverge_share);
    jsonl_num(&j, "mean_step", s->mean_step);
    if (t->turns) { /* multi-turn episodes */
        jsonl_num(&j, "mean_turn", s->mean_turn);
        jsonl_int(&j, "run_on", s->run_on);
        jsonl_int(&j, "run_on_stopped", s->run_on_stopped);
    }
    jsonl_int(&j, "inserted", s->inserted);
    jsonl_int(&j, "rejected", s->rejected);
    jsonl_int(&j, "not_appended", s->too_deep);
    jsonl_num(&j, "loss", s->update.loss);
    jsonl_num(&j, "kl", s->update.kl);
    jsonl_num(&j, "clip_frac", s->update.clip_frac);
    jsonl_num(&j, "grad_norm", s->update.grad_norm);
    jsonl_int(&j, "skipped", s->update.skipped);
    if (s->improve.n) { /* improve steps: the new attempt against the one it was shown */
        const transition_stats *ts = &s->improve;
        jsonl_int(&j, "improve_n", ts->n);
        jsonl_num(&j, "improve_right_right", transition_share(ts, ts->right_right));
        jsonl_num(&j, "improve_right_wrong", transition_share(ts, ts->right_wrong));
        jsonl_num(&j, "improve_wrong_right", transition_share(ts, ts->wrong_right));
        jsonl_num(&j, "improve_wrong_wrong", transition_share(ts, ts->wrong_wrong));
        jsonl_num(&j, "improve_improved", transition_share(ts, ts->improved));
        jsonl_num(&j, "improve_worse", transition_share(ts, ts->worse));
        jsonl_num(&j, "improve_copy_rate", transition_share(ts, ts->copies));
        jsonl_num(&j, "improve_edit_mean", ts->edit_sum / ts->n);
    }
    jsonl_int(&j, "gen_tokens", s->gen_tokens);
    jsonl_num(&j, "rollout_tokens_per_s", s->t_rollout > 0 ? s->gen_tokens / s->t_rollout : 0);
    jsonl_num(&j, "t_plan", s->t_plan);
    jsonl_num(&j, "t_rollout", s->t_rollout);
    jsonl_num(&j, "t_reward", s->t_reward);
    jsonl_num(&j, "t_score", s->t_score);
    jsonl_num(&j, "t_update", s->t_update);
    jsonl_num(&j, "t_buffer", s->t_buffer);
    if (dist_size() > 1) jsonl_num(&j, "comm_ms", s->comm_seconds * 1e3); /* the gradient all-reduces */
    jsonl_end(&j);
}

static void log_eval(FILE *metrics, int64_t it, rl_trainer *t, const exitrl_config *cfg) {
    task_eval_base_result r;
    if (task_eval_base(t->domain, t->knobs, t->model, cfg->eval_instances, cfg->max_new_tokens, &r)) return;
    jsonl_line j;
    jsonl_begin(&j, metrics);
    jsonl_int(&j, "iteration", it);
    jsonl_num(&j, "heldout_score", r.score);
    jsonl_num(&j, "heldout_solved", r.solved);
    jsonl_num(&j, "format_valid", r.valid);
    jsonl_end(&j);
    fprintf(stderr, "eval at iteration %lld: held-out score %.4f solved %.4f format-valid %.3f\n", (long long)it,
            r.score, r.solved, r.valid);
}

/* Everything the loop's hooks touch. */
typedef struct {
    const exitrl_config *cfg;
    rl_trainer *trainer;
    train_state *state;
    FILE *metrics;
    const char *dir;
    int skips_in_row;          /* consecutive iterations with a skipped update */
    int fault, fault_from, fault_to; /* EXITRL_TEST_FAULT: GRPO_FAULT_* in iterations [from, to] */
} train_run;

/* EXITRL_TEST_FAULT=adv|loss|grad:FROM-TO (tests only) puts a NaN into the advantages, the loss or
 * the gradient of the updates of iterations FROM..TO (numbered from 1, as in metrics.jsonl). */
static int parse_test_fault(train_run *r) {
    const char *spec = getenv("EXITRL_TEST_FAULT");
    if (!spec || !*spec) return 0;
    static const char *const kinds[] = {"adv", "loss", "grad"};
    char kind[8];
    int from, to, end = 0;
    if (sscanf(spec, "%7[a-z]:%d-%d%n", kind, &from, &to, &end) == 3 && !spec[end] && from >= 1 && to >= from)
        for (int k = 0; k < 3; k++)
            if (!strcmp(kind, kinds[k])) {
                r->fault = GRPO_FAULT_ADV + k, r->fault_from = from, r->fault_to = to;
                return 0;
            }
    fprintf(stderr, "exitrl: EXITRL_TEST_FAULT = '%s': expected adv|loss|grad:FROM-TO\n", spec);
    return 2;
}

static int train_step(void *ctx, char *text, size_t text_len) {
    train_run *r = ctx;
    rl_iter_stats s;
    const int64_t number = r->state->iteration + 1;
    r->trainer->grpo_opt.test_fault = number >= r->fault_from && number <= r->fault_to ? r->fault : GRPO_FAULT_NONE;
    const double comm0 = dist_comm_seconds();
    if (rl_iteration(r->trainer, (uint64_t)r->state->iteration, &s)) return 1;
    s.comm_seconds = dist_comm_seconds() - comm0;
    r->state->iteration++;
    r->state->rng = r->trainer->rng;
    log_iteration(r->metrics, r->state->iteration, &s, r->trainer);
    r->skips_in_row = s.update.skipped ? r->skips_in_row + 1 : 0;
    if (s.update.skipped && dist_is_root()) /* every rank skipped the same steps */
        fprintf(stderr, "\nexitrl train: iteration %lld: non-finite %s; %d of %d update steps skipped (weights and "
                        "optimizer state unchanged)\n",
                (long long)number, s.update.skip_reason, s.update.skipped, s.update.steps);
    if (s.update.skipped && r->skips_in_row >= r->cfg->max_skips) {
        if (dist_is_root())
            fprintf(stderr, "exitrl train: stopping after %d iterations in a row with skipped updates (max_skips = %d); "
                            "nothing was saved since, so the last checkpoint in %s/checkpoint.bin is intact. Try a "
                            "lower lr or a grad_clip.\n",
                    r->skips_in_row, r->cfg->max_skips, r->dir);
        return 1;
    }
    task_buffer_stats bs;
    task_buffer_get_stats(&r->trainer->buffer, &bs);
    snprintf(text, text_len, "reward %.3f quality %.3f buffer %d depth %.2f kl %.4f %.0f tok/s", s.reward_mean,
             s.quality_mean, bs.size, bs.mean_depth, s.update.kl, s.t_rollout > 0 ? s.gen_tokens / s.t_rollout : 0);
    return 0;
}

static void train_evaluate(void *ctx) {
    train_run *r = ctx;
    log_eval(r->metrics, r->state->iteration, r->trainer, r->cfg);
}

static int train_save(void *ctx, const char *dir) {
    train_run *r = ctx;
    return save(dir, r->trainer, r->state, r->cfg);
}

/* The train-specific rules a parsed config must follow. Returns 0, or 2 after a message. */
static int check_config(const exitrl_config *cfg) {
    if (!strcmp(cfg->task, "none")) {
        fprintf(stderr, "exitrl train: config key 'task' must name a domain (arith, countdown, knapsack, ledger)\n");
        return 2;
    }
    if (cfg->max_new_tokens > BUFFER_ANSWER_CAP) {
        fprintf(stderr, "exitrl train: config key 'max_new_tokens' = %d is out of range: attempts are kept in the "
                        "buffer up to %d bytes\n", cfg->max_new_tokens, BUFFER_ANSWER_CAP);
        return 2;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    exitrl_config cfg;
    int rc = command_config(argc, argv, usage, &cfg);
    if (rc) return rc < 0 ? 0 : rc;
    const char *ckpt_path = cfg.resume[0] ? cfg.resume : cfg.init;
    if (!ckpt_path[0] || (cfg.resume[0] && cfg.init[0])) {
        fprintf(stderr, "exitrl train: give exactly one of --init CKPT (a warm start) or --resume CKPT\n");
        return 2;
    }
    train_run run = {0};
    if ((rc = parse_test_fault(&run))) return rc;
    ckpt_reader ck;
    gpt_config mc;
    char err[512];
    if (ckpt_open(&ck, ckpt_path, err, sizeof err) || model_read_config(&ck, &mc, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        ckpt_close(&ck);
        return 1;
    }
    if (cfg.resume[0] && ckpt_section_size(&ck, "train_state") < 0) {
        fprintf(stderr, "exitrl: %s has no section 'train_state': not an exitrl train checkpoint (start RL from a "
                        "warm start with --init)\n", ckpt_path);
        ckpt_close(&ck);
        return 1;
    }
    if (cfg.resume[0] && (rc = run_resume_config(&cfg, &ck, &mc))) {
        ckpt_close(&ck);
        return rc;
    }
    if ((rc = check_config(&cfg))) {
        ckpt_close(&ck);
        return command_config_error(rc, &cfg);
    }
    run_record_model(&cfg, &mc);
    exitrl_backend *be = setup_backend(&cfg);
    if (!be) {
        ckpt_close(&ck);
        return 1;
    }
    gpt_model m;
    rl_trainer t = {0};
    train_state st = {0};
    FILE *metrics = NULL;
    int rows, T, exit_code = 1;
    rl_model_capacity(&cfg, mc.max_seq, &rows, &T);
    if (gpt_create(&m, be, &mc, rows, T)) {
        ckpt_close(&ck);
        be->destroy(be);
        return 1;
    }
    if (model_load(&ck, &m, cfg.resume[0] != 0, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        goto out;
    }
    if (!cfg.resume[0]) m.adam_step = 0; /* a warm start's optimizer state is not carried into RL */
    if ((rc = rl_trainer_init(&t, &cfg, &m))) {
        exit_code = command_config_error(rc, &cfg);
        goto out;
    }
    if (cfg.resume[0] && restore(&ck, &t, &st, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        goto out;
    }
    if (!cfg.resume[0]) st.rng = t.rng;
    t.rng = st.rng;
    ckpt_close(&ck);

    char dir[600];
    if (run_open(&cfg, dir, sizeof dir, &metrics)) goto out;
    if (dist_is_root())
        fprintf(stderr, "exitrl train: method %s on %s, %s backend, %zu parameters, P=%d G=%d%s, iterations %lld..%d -> %s\n",
                config_choice_name("method", cfg.method), cfg.task, be->name, m.num_params, cfg.prompts, cfg.group_size,
                dist_note(), (long long)st.iteration, cfg.iterations, dir);
    run.cfg = &cfg, run.trainer = &t, run.state = &st, run.metrics = metrics, run.dir = dir;
    if (st.iteration == 0 && cfg.eval_every && dist_is_root()) train_evaluate(&run);
    run_loop_hooks hooks = {"train", "iteration", &st.iteration, cfg.iterations, cfg.eval_every, cfg.ckpt_every,
                            cfg.eval_every != 0, cfg.progress, &run, train_step, train_evaluate, train_save, metrics};
    exit_code = run_loop(&hooks, dir);
    if (exit_code == 0 && dist_is_root()) fprintf(stderr, "exitrl train: done; checkpoint %s/checkpoint.bin\n", dir);
out:
    ckpt_close(&ck);
    if (metrics) fclose(metrics);
    rl_trainer_free(&t);
    gpt_destroy(&m);
    be->destroy(be);
    return exit_code;
}
