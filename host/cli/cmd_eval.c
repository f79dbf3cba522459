/* `exitrl eval`: the paper's multi-step self-improvement protocol (docs/DESIGN.md §7) on held-out
 * instances, for one or more runs: score at every step k = 0..K, net corrections, Delta_K, and the
 * run's mean training iteration depth (from its metrics.jsonl); for multi-turn episodes the return
 * and first-turn accuracy at every k (eval/episode_eval.h). Writes a JSON table and, through
 * tools/plot.py, a PNG of score against step. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "dist/dist.h"
#include "model/model_io.h"
#include "run/setup.h"
#include "eval/episode_eval.h"
#include "eval/task_eval.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: exitrl eval --runs DIR[,DIR...] --task NAME [--out FILE.json] [--show N] [--key value ...]\n"
            "\n"
            "Evaluates each run's checkpoint.bin on the held-out split: an answer to the base prompt,\n"
            "then eval_steps (K) improve steps, each prompted with the request and the latest attempt,\n"
            "over eval_instances problems x eval_samples sampled chains (avg@n, temperature as set).\n"
            "Writes FILE.json (default eval.json) with the score at every k, the k in {0,1,2,4,8,16}\n"
            "summary, net corrections and Delta_K, and per step k >= 1 how attempts changed from step k-1:\n"
            "the shares of chains right->right, right->wrong, wrong->right, wrong->wrong (right = reward 1),\n"
            "improved / worse / unchanged rewards, the copy rate (attempt identical to the previous one)\n"
            "and the mean byte edit distance; FILE.png via tools/plot.py (needs python3 with matplotlib;\n"
            "skipped with a note otherwise). --show N prints N example chains to stdout: each attempt\n"
            "with its score and the verifier's feedback. Keys: task, task_knobs, eval_steps,\n"
            "eval_instances, eval_samples, temperature, max_new_tokens, feedback, seed, device.\n"
            "Multi-turn domains (ledger with task_knobs turns > 1) play whole held-out episodes: at\n"
            "every k, each turn gets k improve steps and its last attempt runs; the JSON has the return\n"
            "(sum of turn rewards) and turns solved at every k, first-turn score and accuracy at every\n"
            "k, turn 0's step-to-step changes, and \"score\" = return / turns; --show N prints N played\n"
            "episodes at k = K.\n");
}

/* The steps pooled by the verdict on the previous attempt: JSON objects into f, and a table on stderr. */
static void print_by_feedback(FILE *f, const transition_classes *c) {
    long total = 0;
    for (int i = 0; i < c->n_classes; i++) total += c->stats[i].n;
    FILE *table = dist_is_root() ? stderr : NULL; /* one table, from rank 0 */
    if (c->n_classes && table) fprintf(table, "  by the feedback on the previous attempt (steps 1..K pooled):\n");
    for (int i = 0; i < c->n_classes; i++) {
        const transition_stats *t = &c->stats[i];
        double copy = transition_share(t, t->copies), up = transition_share(t, t->improved),
               down = transition_share(t, t->worse), same = transition_share(t, t->unchanged);
        fprintf(f, "%s\n       {\"feedback\": \"%s\", \"n\": %ld, \"share\": %.6f, \"copy_rate\": %.6f, \"improved\": %.6f, "
                   "\"worse\": %.6f, \"unchanged\": %.6f, \"right_wrong\": %.6f, \"wrong_right\": %.6f}",
                i ? "," : "", c->name[i], t->n, (double)t->n / (double)total, copy, up, down, same, transition_share(t, t->right_wrong),
                transition_share(t, t->wrong_right));
        if (table)
            fprintf(table, "    %-36s share %.3f | up %.3f down %.3f same %.3f | copy %.3f\n", c->name[i],
                    (double)t->n / (double)total, up, down, same, copy);
    }
}

/* Mean of "mean_step" over a run's metrics.jsonl (the depth of the tasks it trained on). */
static double mean_training_depth(const char *run) {
    char path[700], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    double sum = 0;
    long n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"mean_step\":");
        if (p) {
            sum += strtod(p + 12, NULL);
            n++;
        }
    }
    fclose(f);
    return n ? sum / n : -1;
}

/* 1 when the domain plays episodes of more than one turn with these knobs. */
static int multi_turn(const task_domain *d, const int32_t *knobs) {
    task_instance inst;
    char why[160];
    return d->episode && task_draw(d, knobs, TASK_SPLIT_HELDOUT, TASK_EVAL_STREAM_SEED, 0, &inst, why, sizeof why) == 0 &&
           d->episode->turns(&inst) > 1;
}

/* One JSON array field of a run: "name": [a[0] * scale, ..., a[K] * scale], */
static void json_array(FILE *json, const char *name, const double *a, int K, double scale) {
    fprintf(json, "     \"%s\": [", name);
    for (int k = 0; k <= K; k++) fprintf(json, "%s%.6f", k ? ", " : "", a[k] * scale);
    fprintf(json, "],\n");
}

/* The multi-turn protocol (eval/episode_eval.h). "score" is the mean reward per turn (the return
 * over the number of turns), so that plots and tables read it like a single-turn score; the
 * step-to-step transitions are turn 0's. */
static int eval_episodes(const char *run, const task_domain *d, const int32_t *knobs, gpt_model *m,
                         const task_eval_options *o, FILE *json, int first) {
    task_eval_episodes_result res;
    if (task_eval_episodes(d, knobs, m, o, &res)) return 1;
    const int K = res.K, T = res.turns;
    fprintf(json, "%s    {\"run\": \"%s\", \"task\": \"%s\", \"K\": %d, \"instances\": %d, \"samples\": %d, \"turns\": %d,\n",
            first ? "" : ",\n", run, d->name, K, o->n_instances, o->n_samples, T);
    double depth = mean_training_depth(run);
    if (depth >= 0) fprintf(json, "     \"train_mean_depth\": %.4f,\n", depth);
    else fprintf(json, "     \"train_mean_depth\": null,\n");
    json_array(json, "score", res.ret, K, 1.0 / T);
    json_array(json, "score_se", res.ret_se, K, 1.0 / T);
    json_array(json, "return", res.ret, K, 1.0);
    json_array(json, "return_se", res.ret_se, K, 1.0);
    json_array(json, "turns_solved", res.turns_solved, K, 1.0);
    json_array(json, "valid", res.valid, K, 1.0);
    json_array(json, "first_turn_score", res.first_score, K, 1.0);
    json_array(json, "first_turn_se", res.first_se, K, 1.0);
    json_array(json, "first_turn_solved", res.first_solved, K, 1.0);
    json_array(json, "right_wrong", res.right_wrong, K, 1.0);
    json_array(json, "wrong_right", res.wrong_right, K, 1.0);
    json_array(json, "improved", res.improved, K, 1.0);
    json_array(json, "worse", res.worse, K, 1.0);
    json_array(json, "copy_rate", res.copy_rate, K, 1.0);
    fprintf(json, "     \"delta_K\": %.6f, \"return_delta_K\": %.6f}", (res.ret[K] - res.ret[0]) / T, res.ret[K] - res.ret[0]);
    if (dist_is_root())
        fprintf(stderr, "  %s: return %.4f of %d turns at k=0 -> %.4f at k=%d; first-turn accuracy %.4f -> %.4f\n", run,
                res.ret[0], T, res.ret[K], K, res.first_solved[0], res.first_solved[K]);
    task_eval_episodes_free(&res);
    return 0;
}

static int eval_run(const char *run, const exitrl_config *cfg, const task_domain *d, const int32_t *knobs,
                    int show, FILE *json, int first) {
    char path[700], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.bin", run);
    ckpt_reader r;
    gpt_config mc;
    if (ckpt_open(&r, path, err, sizeof err) || model_read_config(&r, &mc, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        ckpt_close(&r);
        return 1;
    }
    exitrl_backend *be = setup_backend(cfg);
    if (!be) {
        ckpt_close(&r);
        return 1;
    }
    gpt_model m;
    int rc = 1;
    if (gpt_create(&m, be, &mc, 1, 2)) goto no_model;
    if (model_load(&r, &m, 0, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        goto out;
    }
    if (dist_is_root())
        fprintf(stderr, "exitrl eval: %s (%d instances x %d samples, K = %d%s)\n", run, cfg->eval_instances,
                cfg->eval_samples, cfg->eval_steps, dist_note());
    task_eval_options o = {cfg->eval_instances, cfg->eval_samples, cfg->eval_steps, cfg->max_new_tokens,
                           cfg->feedback, (float)cfg->temperature, (uint64_t)cfg->seed, show, stdout};
    if (multi_turn(d, knobs)) {
        rc = eval_episodes(run, d, knobs, &m, &o, json, first);
        goto out;
    }
    task_eval_steps_result res;
    if (task_eval_steps(d, knobs, &m, &o, &res)) goto out;
    int K = res.K;
    fprintf(json, "%s    {\"run\": \"%s\", \"task\": \"%s\", \"K\": %d, \"instances\": %d, \"samples\": %d,\n", first ? "" : ",\n",
            run, d->name, K, cfg->eval_instances, cfg->eval_samples);
    double depth = mean_training_depth(run);
    if (depth >= 0) fprintf(json, "     \"train_mean_depth\": %.4f,\n", depth);
    else fprintf(json, "     \"train_mean_depth\": null,\n");
    const char *names[] = {"score", "score_se", "solved", "valid", "net_corrections", "right_right", "right_wrong",
                           "wrong_right", "wrong_wrong", "improved", "worse", "unchanged", "copy_rate", "edit_mean"};
    double *arrays[] = {res.score, res.score_se, res.solved, res.valid, res.net_corrections, res.right_right, res.right_wrong,
                        res.wrong_right, res.wrong_wrong, res.improved, res.worse, res.unchanged, res.copy_rate,
                        res.edit_mean};
    for (int a = 0; a < (int)(sizeof names / sizeof names[0]); a++) json_array(json, names[a], arrays[a], K, 1.0);
    fprintf(json, "     \"score_at\": {");
    int marks[] = {0, 1, 2, 4, 8, 16}, firstmark = 1;
    for (int i = 0; i < 6; i++)
        if (marks[i] <= K) {
            fprintf(json, "%s\"%d\": %.6f", firstmark ? "" : ", ", marks[i], res.score[marks[i]]);
            firstmark = 0;
        }
    double net = 0;
    for (int k = 1; k <= K; k++) net += res.net_corrections[k];
    fprintf(json, "},\n     \"net_corrections_total\": %.6f, \"delta_K\": %.6f,\n     \"by_feedback\": [", net,
            res.score[K] - res.score[0]);
    print_by_feedback(json, &res.by_feedback);
    fprintf(json, "]}");
    if (dist_is_root())
        fprintf(stderr, "  %s: score %.4f at k=0 -> %.4f at k=%d (Delta_K %+.4f), net corrections %+.4f per chain\n",
            run, res.score[0], res.score[K], K, res.score[K] - res.score[0], net);
    task_eval_steps_free(&res);
    rc = 0;
out:
    gpt_destroy(&m);
no_model:
    ckpt_close(&r);
    be->destroy(be);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    exitrl_config cfg;
    const char *runs = NULL, *out = "eval.json", *show_arg = "0";
    char **rest = malloc(sizeof(char *) * (argc + 1));
    if (!rest) return 1;
    int n_rest = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--runs") || !strcmp(argv[i], "--out") || !strcmp(argv[i], "--show")) && i + 1 < argc) {
            *(argv[i][2] == 'r' ? &runs : argv[i][2] == 'o' ? &out : &show_arg) = argv[i + 1];
            i++;
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    int rc = command_config(n_rest, rest, usage, &cfg);
    free(rest);
    if (rc) return rc < 0 ? 0 : rc;
    char *end = NULL;
    long show = strtol(show_arg, &end, 10);
    if (!*show_arg || *end || show < 0 || show > 1000000) {
        fprintf(stderr, "exitrl eval: --show '%s' is not a number of chains in [0, 1000000]\n", show_arg);
        return 2;
    }
    const task_domain *d = task_domain_find(cfg.task);
    if (!runs || !d) {
        fprintf(stderr, "exitrl eval: --runs DIR[,DIR...] and --task NAME are required (see --help)\n");
        return 2;
    }
    int32_t knobs[TASK_MAX_KNOBS];
    char why[256];
    if (task_knobs_parse(d, cfg.task_knobs, knobs, why, sizeof why)) {
        fprintf(stderr, "exitrl: config key 'task_knobs': %s\n", why);
        return 2;
    }
    if (strchr(out, '\'') || strlen(out) > 600) {
        fprintf(stderr, "exitrl eval: --out must be a plain path without quotes (at most 600 bytes)\n");
        return 2;
    }
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    /* Every rank computes the same results (task_eval_steps gathers them); rank 0 writes them, the
     * others write into a temporary file that vanishes. */
    FILE *json = dist_is_root() ? fopen(tmp, "w") : tmpfile();
    if (!json) {
        fprintf(stderr, "exitrl eval: cannot write %s\n", tmp);
        return 1;
    }
    fprintf(json, "{\n  \"runs\": [\n");
    char list[4096];
    snprintf(list, sizeof list, "%s", runs);
    int first = 1;
    rc = 0;
    for (char *save = NULL, *run = strtok_r(list, ",", &save); run && !rc; run = strtok_r(NULL, ",", &save)) {
        rc = eval_run(run, &cfg, d, knobs, (int)show, json, first);
        first = 0;
    }
    fprintf(json, "\n  ]\n}\n");
    if (fclose(json) || rc) {
        if (dist_is_root()) remove(tmp);
        return rc ? rc : 1;
    }
    if (!dist_is_root()) return 0;
    if (rename(tmp, out)) {
        fprintf(stderr, "exitrl eval: cannot write %s\n", out);
        return 1;
    }
    printf("wrote %s\n", out);
    /* The plot is a convenience: its absence (no matplotlib) is reported, not an error. */
    char png[700], cmd[2200];
    size_t stem = strlen(out) > 5 && !strcmp(out + strlen(out) - 5, ".json") ? strlen(out) - 5 : strlen(out);
    snprintf(png, sizeof png, "%.*s.png", (int)stem, out);
    /* $EXITRL_PYTHON first, then the python3 on PATH, then the system one (Debian's matplotlib). */
    const char *env = getenv("EXITRL_PYTHON");
    const char *pythons[] = {env && !strchr(env, '\'') ? env : NULL, "python3", "/usr/bin/python3"};
    for (int i = 0; i < 3; i++) {
        if (!pythons[i]) continue;
        snprintf(cmd, sizeof cmd, "'%s' -c 'import matplotlib' 2>/dev/null && '%s' '%s/tools/plot.py' eval '%s' '%s'",
                 pythons[i], pythons[i], EXITRL_SOURCE_DIR, out, png);
        if (system(cmd) == 0) {
            printf("wrote %s\n", png);
            return 0;
        }
    }
    fprintf(stderr, "exitrl eval: no plot written (tools/plot.py needs python3 with matplotlib)\n");
    return 0;
}
