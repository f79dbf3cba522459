/* `exitrl train`: GRPO / ExIt from a warm-started checkpoint, with metrics per iteration, periodic
 * held-out evaluation, atomic checkpoints (weights, optimizer, reference policy, buffer, RNG) and
 * an exact resume. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "rl/trainer.h"
#include "model/model_io.h"
#include "run/run_log.h"
#include "run/run_loop.h"
#include "run/setup.h"
#include "eval/task_eval.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: exitrl train --init CKPT | --resume CKPT [--config FILE] [--key value ...]\n"
            "\n"
            "RL on a task domain with the method ladder of the ExIt paper (method = grpo | curriculum |\n"
            "improve | diverge | exit), starting from a warm-started checkpoint (exitrl pretrain --task).\n"
            "Writes <out_dir>/<name>/metrics.jsonl (one object per iteration: rewards, scores, buffer,\n"
            "KL, tokens/s, time per phase; held-out evaluations every eval_every iterations) and\n"
            "checkpoint.bin (every ckpt_every iterations, at the end and on Ctrl-C); --resume continues\n"
            "exactly. Exit codes: 0 done, 1 runtime error, 2 usage error, 130 interrupted (saved).\n\n");
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

static int restore(ckpt_reader *r, rl_trainer *t, train_state *st, char *err, size_t err_len) {
    if (ckpt_read(r, "train_state", st, sizeof *st, err, err_len)) return -1;
    int64_t n = ckpt_section_size(r, "exit_buffer");
    if (n < 0 || n > (int64_t)1 << 32) return snprintf(err, err_len, "checkpoint has no valid exit_buffer section"), -1;
    void *buf = malloc((size_t)n);
    if (!buf) return snprintf(err, err_len, "out of memory reading the buffer"), -1;
    int rc = ckpt_read(r, "exit_buffer", buf, (uint64_t)n, err, err_len);
    if (!rc && task_buffer_deserialize(&t->buffer, buf, (size_t)n, err, err_len)) rc = -1;
    free(buf);
    if (rc || !t->ref.master) return rc;
    float *ref = malloc(sizeof(float) * t->model->num_params);
    if (!ref) return snprintf(err, err_len, "out of memory reading the reference policy"), -1;
    rc = ckpt_read(r, "ref_params", ref, sizeof(float) * t->model->num_params, err, err_len);
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
    jsonl_int(&j, "inserted", s->inserted);
    jsonl_int(&j, "rejected", s->rejected);
    jsonl_int(&j, "not_appended", s->too_deep);
    jsonl_num(&j, "loss", s->update.loss);
    jsonl_num(&j, "kl", s->update.kl);
    jsonl_num(&j, "clip_frac", s->update.clip_frac);
    jsonl_num(&j, "grad_norm", s->update.grad_norm);
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
} train_run;

static int train_step(void *ctx, char *text, size_t text_len) {
    train_run *r = ctx;
    rl_iter_stats s;
    if (rl_iteration(r->trainer, (uint64_t)r->state->iteration, &s)) return 1;
    r->state->iteration++;
    r->state->rng = r->trainer->rng;
    log_iteration(r->metrics, r->state->iteration, &s, r->trainer);
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

int cmd_train(int argc, char **argv) {
    exitrl_config cfg;
    int rc = command_config(argc, argv, usage, &cfg);
    if (rc) return rc < 0 ? 0 : rc;
    const char *ckpt_path = cfg.resume[0] ? cfg.resume : cfg.init;
    if (!ckpt_path[0] || (cfg.resume[0] && cfg.init[0])) {
        fprintf(stderr, "exitrl train: give exactly one of --init CKPT (a warm start) or --resume CKPT\n");
        return 2;
    }
    if (!strcmp(cfg.task, "none")) {
        fprintf(stderr, "exitrl train: config key 'task' must name a domain (arith, countdown, knapsack)\n");
        return 2;
    }
    if (cfg.max_new_tokens > BUFFER_ANSWER_CAP) {
        fprintf(stderr, "exitrl train: config key 'max_new_tokens' = %d is out of range: attempts are kept in the "
                        "buffer up to %d bytes\n", cfg.max_new_tokens, BUFFER_ANSWER_CAP);
        return 2;
    }
    ckpt_reader ck;
    gpt_config mc;
    char err[512];
    if (ckpt_open(&ck, ckpt_path, err, sizeof err) || model_read_config(&ck, &mc, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        ckpt_close(&ck);
        return 1;
    }
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
        exit_code = rc;
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
    fprintf(stderr, "exitrl train: method %s on %s, %s backend, %zu parameters, P=%d G=%d, iterations %lld..%d -> %s\n",
            config_choice_name("method", cfg.method), cfg.task, be->name, m.num_params, cfg.prompts, cfg.group_size, (long long)st.iteration,
            cfg.iterations, dir);
    train_run run = {&cfg, &t, &st, metrics, dir};
    if (st.iteration == 0 && cfg.eval_every) train_evaluate(&run);
    run_loop_hooks hooks = {"train", "iteration", &st.iteration, cfg.iterations, cfg.eval_every, cfg.ckpt_every,
                            cfg.eval_every != 0, cfg.progress, &run, train_step, train_evaluate, train_save};
    exit_code = run_loop(&hooks, dir);
    if (exit_code == 0) fprintf(stderr, "exitrl train: done; checkpoint %s/checkpoint.bin\n", dir);
out:
    ckpt_close(&ck);
    if (metrics) fclose(metrics);
    rl_trainer_free(&t);
    gpt_destroy(&m);
    be->destroy(be);
    return exit_code;
}
