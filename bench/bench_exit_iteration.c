/* ExIt iteration benchmark: wall time of one full exitrl ExIt iteration (host/rl/trainer.h: plan, rollout,
 * reward, score, GRPO update, buffer) on a task domain (arith, countdown or knapsack, with the
 * domain's real prompts: base prompts, then improve / diverge steps once the buffer replays; with
 * --feedback 1 they show the verifier's feedback), per phase, with exitrl's shared prefixes
 * (share_prefix 1) or without (--no-share), against a PyTorch peer
 * (bench/peers/exit_iteration_torch.py) doing the same rollout, reward, score and update work on
 * the same prompts, from the same starting weights, measured in the same run.
 * The model is randomly initialised (no warm start), so rewards are mostly 0; the work per phase
 * does not depend on that, except that completions run to max_new_tokens unless EOS is drawn.
 * exitrl runs its warmup and timed iterations first and records each iteration's rendered prompts
 * and correct answers; the peer then runs the same sequence of iterations. Each side reports the
 * median over the timed iterations of every phase and of the total. Prints a table and appends one
 * JSONL object to bench/results/exit_iteration_<cpu|gpu>.jsonl (docs/DESIGN.md §10): value is
 * our seconds per iteration, ratio = peer seconds / our seconds (higher is better). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run/setup.h"
#include "bench_common.h"
#include "ops.h"
#include "run/config.h"
#include "rl/trainer.h"
#include "tasks/arith.h"
#include "tasks/countdown.h"
#include "tasks/knapsack.h"
#include "model/tokenizer.h"

#define PEER_SCRIPT bench_peer_script("exit_iteration_torch.py")
#define WEIGHT_SEED 1234

typedef struct {
    const char *config, *out, *python, *device, *task;
    int prompts, group, max_new, iterations, warmup, threads, peer, quick, feedback, no_share;
} bench_opts;

static const char ABOUT[] =
    "Times full ExIt iterations (method exit, randomly initialised policy) of exitrl and the\n"
    "same rollout / reward / score / GRPO-update work in PyTorch on the same prompts and\n"
    "starting weights; appends a JSONL result. Defaults depend on the backend:\n"
    "  CPU:  --config tiny  --prompts 16  --group 8 --max-new 16\n"
    "  CUDA: --config small --prompts 128 --group 8 --max-new 48\n";

/* Options left 0 / NULL get backend-dependent defaults later (apply_defaults). */
static void parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.device = "auto", .task = "arith", .iterations = 3, .warmup = 1, .threads = 2, .peer = 1};
    char max_new_help[64];
    snprintf(max_new_help, sizeof max_new_help, "generation cap per completion (<= %d)", BUFFER_ANSWER_CAP);
    const bench_option opts[] = {
        BENCH_OPT_STRING("--config", "NAME", &o->config, "model preset (tiny, small, gpt2-124m)"),
        BENCH_OPT_STRING("--task", "NAME", &o->task, "task domain: arith (default), countdown or knapsack"),
        BENCH_OPT_INT("--feedback", "0|1", &o->feedback, 0, "iteration prompts show the verifier's feedback (default 0)"),
        {"--no-share", NULL, BENCH_FLAG, &o->no_share, 1, NULL,
         "exitrl without shared prefixes (share_prefix 0): every sequence's prompt alone"},
        BENCH_OPT_INT("--prompts", "P", &o->prompts, 1, "task instances per iteration"),
        BENCH_OPT_INT("--group", "G", &o->group, 2, "completions per instance (>= 2)"),
        BENCH_OPT_INT("--max-new", "N", &o->max_new, 1, max_new_help),
        BENCH_OPT_INT("--iterations", "N", &o->iterations, 1, "timed iterations (default 3)"),
        BENCH_OPT_INT("--warmup", "N", &o->warmup, 0, "untimed iterations first (default 1)"),
        BENCH_OPT_THREADS(&o->threads),
        BENCH_OPT_DEVICE(&o->device),
        BENCH_OPT_OUT(&o->out, "(default\nbench/results/exit_iteration_cpu.jsonl or _gpu.jsonl by backend)"),
        BENCH_OPT_PYTHON(&o->python, "the peer"),
        BENCH_OPT_NO_PEER(&o->peer, "time exitrl only (no ratio is recorded)"),
        BENCH_OPT_QUICK(&o->quick, "smoke test: tiny, P=4, G=4, 8 new tokens, 1 timed iteration after 1\n"
                                   "warmup; appends only when --out is given"),
        {0},
    };
    bench_parse_options(argc, argv, opts, ABOUT);
    if (strcmp(o->task, "arith") && strcmp(o->task, "countdown") && strcmp(o->task, "knapsack")) {
        fprintf(stderr, "bench_exit_iteration: --task %s: expected arith, countdown or knapsack\n", o->task);
        exit(2);
    }
    if (o->feedback > 1) {
        fprintf(stderr, "bench_exit_iteration: --feedback %d: expected 0 or 1\n", o->feedback);
        exit(2);
    }
    if (o->max_new > BUFFER_ANSWER_CAP) {
        fprintf(stderr, "bench_exit_iteration: --max-new %d exceeds %d, the answer bytes the ExIt buffer keeps\n",
                o->max_new, BUFFER_ANSWER_CAP);
        exit(2);
    }
}

static void apply_defaults(bench_opts *o, int gpu) {
    if (o->quick) {
        if (!o->config) o->config = "tiny";
        if (!o->prompts) o->prompts = 4;
        if (!o->group) o->group = 4;
        if (!o->max_new) o->max_new = 8;
        o->iterations = 1;
        o->warmup = 1;
        return;
    }
    if (!o->config) o->config = gpu ? "small" : "tiny";
    if (!o->prompts) o->prompts = gpu ? 128 : 16;
    if (!o->group) o->group = 8;
    if (!o->max_new) o->max_new = gpu ? 48 : 16;
}

/* Phase times of one iteration, in seconds, in the order of PHASE_NAMES. */
enum { PH_PLAN, PH_ROLLOUT, PH_REWARD, PH_SCORE, PH_UPDATE, PH_BUFFER, PH_TOTAL, N_PHASES };
static const char *const PHASE_NAMES[N_PHASES] = {"t_plan", "t_rollout", "t_reward", "t_score",
                                                  "t_update", "t_buffer", "t_total"};

/* Files shared with the peer, in a private temporary directory. */
typedef struct {
    char dir[64], weights[96], prompts[96];
} peer_files;

/* The number the peer's verifier needs besides the prompt: arith's answer, countdown's target,
 * knapsack's optimal value (the items, capacity and numbers it reads from the prompt). */
static int reward_key(const char *task, const task_instance *inst, long long *key) {
    if (!strcmp(task, "arith")) {
        arith_problem p;
        if (arith_generate(inst, &p)) return -1;
        *key = (long long)p.answer;
    } else if (!strcmp(task, "countdown")) {
        countdown_problem p;
        if (countdown_generate(inst, &p)) return -1;
        *key = (long long)p.target;
    } else {
        knapsack_problem p;
        if (knapsack_generate(inst, &p)) return -1;
        *key = knapsack_optimum(&p, NULL);
    }
    return 0;
}

/* Appends the iteration's P prompts as "KEY LEN ids..." lines (the format the peer reads). */
static int write_iteration_prompts(FILE *f, const rl_trainer *t, const char *task) {
    for (int s = 0; s < t->n_prompts; s++) {
        long long key;
        if (reward_key(task, &t->slots[s].task.task, &key)) {
            fprintf(stderr, "bench_exit_iteration: internal error: slot %d holds no %s problem\n", s, task);
            return -1;
        }
        const int len = t->prompt_lens[s * t->group_size];
        const int *ids = t->prompts + (size_t)s * t->group_size * t->prompt_cap;
        fprintf(f, "%lld %d", key, len);
        for (int i = 0; i < len; i++) fprintf(f, " %d", ids[i]);
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

/* Runs warmup + timed iterations; fills med[N_PHASES] with the timed medians and the mean share of
 * replayed slots; writes every iteration's prompts to prompts_out when not NULL. Returns 0 or -1. */
static int run_ours(rl_trainer *t, const bench_opts *o, FILE *prompts_out, double *med, double *gen_tokens,
                    double *replay_share, double *prompt_tokens, double *row_tokens) {
    const int n = o->warmup + o->iterations;
    double *times = malloc(sizeof(double) * (size_t)N_PHASES * o->iterations);
    double *tokens = malloc(sizeof(double) * 3 * o->iterations), *prompt = tokens + o->iterations,
           *rows = prompt + o->iterations;
    if (!times || !tokens) {
        fprintf(stderr, "bench_exit_iteration: out of memory\n");
        exit(1);
    }
    exitrl_backend *be = t->model->backend;
    *replay_share = 0;
    int rc = 0;
    for (int it = 0; it < n && !rc; it++) {
        rl_iter_stats st;
        double t0 = bench_now();
        if (rl_iteration(t, (uint64_t)it, &st)) {
            rc = -1;
            break;
        }
        be->sync(be); /* the last optimizer step may still be running on a GPU */
        double total = bench_now() - t0;
        if (prompts_out) rc = write_iteration_prompts(prompts_out, t, o->task);
        fprintf(stderr, "iteration %d%s: %.3f s, %ld tokens generated, reward %.3f, replayed %.2f\n", it,
                it < o->warmup ? " (warmup)" : "", total, st.gen_tokens, st.reward_mean, st.replay_share);
        if (it < o->warmup) continue;
        int k = it - o->warmup;
        const double phases[N_PHASES] = {st.t_plan, st.t_rollout, st.t_reward, st.t_score, st.t_update, st.t_buffer,
                                         total};
        for (int p = 0; p < N_PHASES; p++) times[(size_t)p * o->iterations + k] = phases[p];
        tokens[k] = (double)st.gen_tokens;
        rows[k] = (double)st.update.row_tokens;
        prompt[k] = 0;
        for (int i = 0; i < t->n_prompts * t->group_size; i++) prompt[k] += t->rollouts.prompt_len[i];
        *replay_share += st.replay_share / o->iterations;
    }
    if (!rc) {
        for (int p = 0; p < N_PHASES; p++) med[p] = bench_median(times + (size_t)p * o->iterations, o->iterations);
        *gen_tokens = bench_median(tokens, o->iterations);
        *prompt_tokens = bench_median(prompt, o->iterations);
        *row_tokens = bench_median(rows, o->iterations);
    }
    free(times);
    free(tokens);
    return rc;
}

/* Runs the PyTorch peer; fills med[] (t_plan and t_buffer stay 0: the peer has neither) and its
 * generated tokens. Returns 0, or -1 with the reason printed. */
static int run_peer(const char *python, const exitrl_config *cfg, const gpt_config *c, const bench_opts *o,
                    const peer_files *files, const exitrl_backend *be, double *med, double *gen_tokens) {
    char cmd[4096], line[2048];
    const int gpu = !strcmp(be->name, "cuda");
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --n_layer %d --n_head %d --d_model %d --max_seq %d --vocab %d --vocab_padded %d "
             "--weights '%s' --prompts '%s' --warmup %d --max_new_tokens %d --eos %d --temperature %.9g "
             "--clip_eps_low %.9g --clip_eps_high %.9g --kl_beta %.9g --adv_eps %.9g --lr %.9g --beta1 %.9g "
             "--beta2 %.9g --adam_eps %.9g --weight_decay %.9g --grad_clip %.9g --seed %lld --threads %d "
             "--device %s --dtype %s --task %s",
             python, PEER_SCRIPT, c->n_layer, c->n_head, c->d_model, c->max_seq, c->vocab, c->vocab_padded,
             files->weights, files->prompts, o->warmup, cfg->max_new_tokens, TOK_EOS, cfg->temperature,
             cfg->clip_eps_low, cfg->clip_eps_high, cfg->kl_beta, cfg->adv_eps, cfg->lr, cfg->beta1, cfg->beta2,
             cfg->adam_eps, cfg->weight_decay, cfg->grad_clip, cfg->seed, o->threads, gpu ? "cuda" : "cpu",
             be->act_dtype == EXITRL_BF16 ? "bf16" : "fp32", o->task);
    FILE *p = bench_peer_open(cmd, "peer");
    if (!p) return -1;
    int found = 0;
    while (fgets(line, sizeof line, p)) {
        if (!strstr(line, "\"t_total\": ")) continue;
        for (int k = 0; k < N_PHASES; k++) med[k] = k == PH_PLAN || k == PH_BUFFER ? 0 : bench_json_number(line, PHASE_NAMES[k]);
        *gen_tokens = bench_json_number(line, "gen_tokens");
        found = med[PH_TOTAL] > 0;
    }
    int status = pclose(p);
    if (status != 0 || !found) {
        fprintf(stderr, "bench_exit_iteration: the peer failed (status %d): %s\n", status, cmd);
        return -1;
    }
    return 0;
}

/* The benchmark's exitrl config: defaults, then the shape under test. Returns 0 or 2. */
static int make_config(const bench_opts *o, exitrl_config *cfg) {
    char p[16], g[16], mn[16], fb[4], sh[4];
    snprintf(p, sizeof p, "%d", o->prompts);
    snprintf(g, sizeof g, "%d", o->group);
    snprintf(mn, sizeof mn, "%d", o->max_new);
    snprintf(fb, sizeof fb, "%d", o->feedback);
    snprintf(sh, sizeof sh, "%d", !o->no_share);
    config_defaults(cfg);
    const char *kv[][2] = {{"model", o->config}, {"task", o->task}, {"method", "exit"}, {"device", o->device},
                           {"prompts", p},       {"group_size", g}, {"max_new_tokens", mn},
                           {"feedback", fb},     {"share_prefix", sh}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (config_set(cfg, kv[i][0], kv[i][1], "bench_exit_iteration")) return 2;
    return 0;
}

static void write_record(FILE *f, const bench_run *run, const exitrl_backend *be, const bench_opts *o, size_t params,
                         double load, const double *ours, double gen_tokens, double replay, double prompt_tokens,
                         double row_tokens, const double *peer, double peer_tokens) {
    bench_json_head(f, "exit_iteration", run, be->name, NULL, o->config);
    fprintf(f, ",\"params\":%zu,\"task\":\"%s\",\"feedback\":%d,\"share_prefix\":%d,\"method\":\"exit\",\"P\":%d,"
            "\"G\":%d,\"max_new_tokens\":%d,\"iterations\":%d,\"warmup\":%d,\"threads\":%d,\"loadavg_1m\":%.2f,"
            "\"gen_tokens\":%.0f,\"replay_share\":%.3f,\"prompt_tokens\":%.0f,\"update_row_tokens\":%.0f",
            params, o->task, o->feedback, !o->no_share, o->prompts, o->group, o->max_new, o->iterations, o->warmup,
            o->threads, load, gen_tokens, replay, prompt_tokens, row_tokens);
    for (int k = 0; k < PH_TOTAL; k++) fprintf(f, ",\"%s\":%.6g", PHASE_NAMES[k], ours[k]);
    fprintf(f, ",\"value\":%.4f,\"unit\":\"s/iteration\"", ours[PH_TOTAL]);
    if (peer) {
        fprintf(f, ",\"peer\":\"%s\",\"peer_value\":%.4f,\"ratio\":%.4f,\"peer_gen_tokens\":%.0f",
                !strcmp(be->name, "cuda") ? "torch.eager" : "torch.cpu", peer[PH_TOTAL],
                peer[PH_TOTAL] / ours[PH_TOTAL], peer_tokens);
        for (int k = PH_ROLLOUT; k <= PH_UPDATE; k++) fprintf(f, ",\"peer_%s\":%.6g", PHASE_NAMES[k], peer[k]);
    }
    fprintf(f, "}\n");
}

int main(int argc, char **argv) {
    exitrl_cpu_blas_choose_core(argv); /* before timing anything (see ops.h) */
    bench_program = "bench_exit_iteration";
    bench_opts o;
    parse_args(argc, argv, &o);
    bench_run run;
    exitrl_backend *be = bench_open(o.device, o.threads, argv, &run);
    if (!be) return 1;
    const int gpu = !strcmp(be->name, "cuda");
    apply_defaults(&o, gpu);
    exitrl_config cfg;
    gpt_config mc;
    if (make_config(&o, &cfg) || setup_model_config(&cfg, &mc)) {
        be->destroy(be);
        return 2;
    }


    int rows, T, rc = 1;
    rl_model_capacity(&cfg, mc.max_seq, &rows, &T); /* the capacity `exitrl train` gives the model */
    gpt_model m;
    rl_trainer t = {0};
    FILE *prompts_out = NULL;
    if (gpt_create(&m, be, &mc, rows, T)) {
        be->destroy(be);
        return 1;
    }
    gpt_init_random(&m, WEIGHT_SEED);
    const char *python = o.peer ? bench_find_python(o.python) : NULL;
    if (python) bench_peer_blas(python, &run);
    peer_files files = {.dir = ""};
    if (python && bench_temp_dir(files.dir, sizeof files.dir, "bench_exit")) python = NULL;
    snprintf(files.weights, sizeof files.weights, "%s/weights.f32", files.dir);
    snprintf(files.prompts, sizeof files.prompts, "%s/prompts.txt", files.dir);
    if (python) { /* the starting weights, before the trainer copies them as its reference */
        if (bench_write_weights(&m, files.weights) || !(prompts_out = fopen(files.prompts, "w"))) {
            if (!prompts_out) fprintf(stderr, "bench_exit_iteration: cannot write %s: %s\n", files.prompts, strerror(errno));
            goto out;
        }
        fprintf(prompts_out, "%d %d %d\n", o.prompts, o.group, o.warmup + o.iterations);
    }
    if ((rc = rl_trainer_init(&t, &cfg, &m))) goto out;
    rc = 1;

    const double load = bench_load_average();
    printf("ExIt iteration on %s (%s backend, %s activations), %s (%zu parameters), %s (feedback %d), P=%d G=%d, "
           "max_new_tokens %d, shared prefixes %s, %d threads, median of %d iterations after %d warmup, load average "
           "%.2f\n",
           run.device, be->name, be->act_dtype == EXITRL_BF16 ? "bf16" : "fp32", o.config, m.num_params, o.task,
           o.feedback, o.prompts, o.group, o.max_new, o.no_share ? "off" : "on", o.threads, o.iterations, o.warmup,
           load);
    bench_warn_load(load, "high");
    double ours[N_PHASES], peer[N_PHASES], gen_tokens = 0, peer_tokens = 0, replay = 0, prompt_tokens = 0,
           row_tokens = 0;
    if (run_ours(&t, &o, prompts_out, ours, &gen_tokens, &replay, &prompt_tokens, &row_tokens)) goto out;
    int have_peer = 0;
    if (python) {
        int bad = fclose(prompts_out) != 0;
        prompts_out = NULL;
        if (bad) fprintf(stderr, "bench_exit_iteration: cannot write %s\n", files.prompts);
        have_peer = !bad && run_peer(python, &cfg, &mc, &o, &files, be, peer, &peer_tokens) == 0;
    }

    printf("%-10s %10s %10s\n", "phase", "ours s", have_peer ? "peer s" : "");
    for (int k = 0; k < N_PHASES; k++) {
        printf("%-10s %10.4f", PHASE_NAMES[k], ours[k]);
        if (have_peer && k != PH_PLAN && k != PH_BUFFER) printf(" %10.4f", peer[k]);
        printf("\n");
    }
    printf("prompt tokens per iteration %.0f; the update ran over %.0f tokens\n", prompt_tokens, row_tokens);
    printf("generated tokens per iteration: ours %.0f%s", gen_tokens, have_peer ? ", peer " : "\n");
    if (have_peer) printf("%.0f\nratio (peer time / our time): %.3f\n", peer_tokens, peer[PH_TOTAL] / ours[PH_TOTAL]);

    char out_path[4096];
    FILE *out = bench_open_results(o.out, o.quick, "exit_iteration", gpu, out_path, sizeof out_path);
    if (!out) goto out;
    write_record(out, &run, be, &o, m.num_params, load, ours, gen_tokens, replay, prompt_tokens, row_tokens,
                 have_peer ? peer : NULL,
                 peer_tokens);
    rc = fclose(out) != 0 || (python && !have_peer);
    if (out_path[0]) printf("appended to %s\n", out_path);
    else printf("quick run: nothing appended (give --out to keep the result)\n");
out:
    if (prompts_out) fclose(prompts_out);
    if (python) {
        remove(files.weights);
        remove(files.prompts);
        remove(files.dir);
    }
    rl_trainer_free(&t);
    gpt_destroy(&m);
    be->destroy(be);
    return rc;
}
