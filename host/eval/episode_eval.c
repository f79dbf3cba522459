#include "eval/episode_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "model/tokenizer.h"
#include "rl/transitions.h"

/* One chain playing one held-out episode. */
typedef struct {
    task_instance inst;
    unsigned char state[TASK_STATE_CAP];  /* before the current turn */
    unsigned char after[TASK_STATE_CAP];  /* what the latest attempt left */
    char attempt[TASK_ANSWER_CAP];        /* the latest attempt's raw bytes (shown to the next step) */
    int attempt_len;
    char feedback[TASK_FEEDBACK_CAP];
    char results[TASK_RESULTS_CAP];       /* the latest attempt's results */
    float reward;
    int valid;
    double ret;                           /* return so far */
    int solved;                           /* turns with reward 1 so far */
    int n_valid;                          /* executed answers well formed so far */
} player;

/* The played history of every chain: [n][turns] answers and results. */
typedef struct {
    char (*answer)[TASK_ANSWER_CAP];
    int *answer_len;
    char (*results)[TASK_RESULTS_CAP];
} history;

enum { N_ARRAYS = 13 };
static void arrays(task_eval_episodes_result *r, double **a[N_ARRAYS]) {
    double **p[N_ARRAYS] = {&r->first_score, &r->first_se, &r->first_solved, &r->ret, &r->ret_se, &r->turns_solved,
                            &r->valid, &r->right_wrong, &r->wrong_right, &r->improved, &r->worse, &r->copy_rate, NULL};
    memcpy(a, p, sizeof p);
}

void task_eval_episodes_free(task_eval_episodes_result *r) {
    double **a[N_ARRAYS];
    arrays(r, a);
    for (int i = 0; a[i]; i++) free(*a[i]);
    memset(r, 0, sizeof *r);
}

/* Step j of turn t for every player: the turn prompt (base at j = 0, else improve), one sampled
 * answer each, scored from the state before the turn. */
static int step_turn(const task_domain *d, gpt_model *m, player *p, const history *h, int n, int turns, int t, int j,
                     const task_eval_options *o, const struct exitrl_sampling *sp, int seq_offset, int *prompts,
                     int *lens, int cap, task_eval_answer *ans) {
    const task_episode *E = d->episode;
    task_turn_record *earlier = t > 0 ? malloc(sizeof *earlier * (size_t)t) : NULL;
    if (t > 0 && !earlier) return -1;
    for (int i = 0; i < n; i++) {
        for (int e = 0; e < t; e++) {
            size_t at = (size_t)i * turns + e;
            earlier[e] = (task_turn_record){h->answer[at], (size_t)h->answer_len[at], h->results[at], strlen(h->results[at])};
        }
        int *dst = prompts + (size_t)i * cap;
        lens[i] = j == 0 ? task_render_turn_prompt(d, &p[i].inst, t, earlier, TASK_PROMPT_BASE, NULL, 0, NULL, 0, dst, cap)
                         : task_render_turn_prompt(d, &p[i].inst, t, earlier, TASK_PROMPT_IMPROVE, p[i].attempt,
                                                   (size_t)p[i].attempt_len, o->feedback ? p[i].feedback : NULL,
                                                   o->feedback ? strlen(p[i].feedback) : 0, dst, cap);
        if (lens[i] < 0) {
            fprintf(stderr, "exitrl: the prompt of turn %d (of %d) does not fit the context: more than %d tokens, the "
                            "model's max_seq is %d; evaluate fewer turns (task_knobs turns=...)\n",
                    t + 1, turns, cap, m->cfg.max_seq);
            free(earlier);
            return -1;
        }
    }
    free(earlier);
    if (task_eval_generate(m, prompts, lens, cap, n, o->max_new, sp, seq_offset, ans)) return -1;
    for (int i = 0; i < n; i++) {
        const task_eval_answer *a = &ans[i];
        /* A malformed completion runs as an empty answer: the environment says what it makes of it. */
        const char *run = a->len < 0 ? "" : a->answer;
        float r = E->score_turn(&p[i].inst, t, p[i].state, run, a->len < 0 ? 0 : (size_t)a->len, p[i].after,
                                p[i].results, sizeof p[i].results, p[i].feedback, sizeof p[i].feedback);
        if (r < 0.0f) {
            fprintf(stderr, "exitrl: %s could not score turn %d of a held-out episode\n", d->name, t);
            return -1;
        }
        if (a->len < 0) snprintf(p[i].feedback, sizeof p[i].feedback, "malformed");
        p[i].reward = r;
        p[i].valid = a->len >= 0 && d->well_formed(&p[i].inst, a->answer, (size_t)a->len) == 1;
        memcpy(p[i].attempt, a->raw, (size_t)a->raw_len + 1);
        p[i].attempt_len = a->raw_len;
    }
    return 0;
}

/* Held-out episode `instance` as its chain `chain` played it. */
static void print_episode(FILE *f, const task_domain *d, const player *p, const history *h, int instance, int chain,
                          int turns, int K) {
    fprintf(f, "episode %d (held-out instance %d, k = %d improve steps per turn): return %.3f, %d of %d turns solved\n",
            instance + 1, instance, K, p->ret, p->solved, turns);
    for (int t = 0; t < turns; t++) {
        char request[TASK_REQUEST_CAP];
        if (d->episode->render_turn(&p->inst, t, request, sizeof request) < 0) snprintf(request, sizeof request, "?");
        size_t at = (size_t)chain * turns + t;
        fprintf(f, "  turn %d: %s\n    answer \"", t + 1, request);
        task_eval_print_escaped(f, h->answer[at], (size_t)h->answer_len[at]);
        fprintf(f, "\" -> ");
        task_eval_print_escaped(f, h->results[at], strlen(h->results[at]));
        fputc('\n', f);
    }
}

int task_eval_episodes(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], gpt_model *m,
                       const task_eval_options *o, task_eval_episodes_result *out) {
    memset(out, 0, sizeof *out);
    if (!d->episode) {
        fprintf(stderr, "exitrl: %s has no multi-turn episodes\n", d->name);
        return -1;
    }
    const int n_inst = o->n_instances, per = o->n_samples, n = n_inst * per, K = o->K, cap = m->cfg.max_seq - 1;
    player *p = calloc((size_t)n, sizeof *p);
    task_eval_answer *ans = malloc(sizeof *ans * (size_t)n);
    int *prompts = malloc(sizeof(int) * (size_t)n * cap), *lens = malloc(sizeof(int) * (size_t)n);
    double *v = malloc(sizeof(double) * (size_t)n);
    task_instance first;
    char why[160];
    int turns = -1, rc = -1, ok = 1;
    if (n > 0 && task_draw(d, knobs, TASK_SPLIT_HELDOUT, TASK_EVAL_STREAM_SEED, 0, &first, why, sizeof why) == 0)
        turns = d->episode->turns(&first);
    history h = {0};
    if (turns >= 1) {
        h.answer = calloc((size_t)n * turns, sizeof *h.answer);
        h.answer_len = calloc((size_t)n * turns, sizeof *h.answer_len);
        h.results = calloc((size_t)n * turns, sizeof *h.results);
    }
    out->K = K, out->turns = turns;
    double **a[N_ARRAYS];
    arrays(out, a);
    for (int i = 0; a[i]; i++) ok &= (*a[i] = calloc((size_t)K + 1, sizeof(double))) != NULL;
    if (!p || !ans || !prompts || !lens || !v || !h.answer || !h.answer_len || !h.results || !ok) {
        if (turns < 1) fprintf(stderr, "exitrl: %s\n", n > 0 ? why : "no held-out episodes asked for");
        goto done;
    }
    for (int i = 0; i < n_inst; i++)
        if (task_draw(d, knobs, TASK_SPLIT_HELDOUT, TASK_EVAL_STREAM_SEED, (uint64_t)i, &p[(size_t)i * per].inst, why,
                      sizeof why)) {
            fprintf(stderr, "exitrl: %s\n", why);
            goto done;
        }
    struct exitrl_sampling sp = {o->temperature > 0 ? o->temperature : 1.0f, 0, 1.0f, o->temperature <= 0, TOK_EOS,
                                 o->seed};
    for (int k = 0; k <= K; k++) {
        for (int i = 0; i < n; i++) {
            task_instance inst = p[(size_t)(i / per) * per].inst;
            memset(&p[i], 0, sizeof p[i]);
            p[i].inst = inst;
            if (d->episode->initial_state(&inst, p[i].state)) goto done;
        }
        for (int t = 0; t < turns; t++) {
            /* Turn 0 is keyed the same in every play, so its attempts 0..k are one chain of steps. */
            const int key = t == 0 ? 0 : 1 + k * turns + t;
            for (int j = 0; j <= k; j++) {
                transition_stats ts = {0};
                player *before = NULL;
                if (t == 0 && k == K && j > 0) {
                    before = malloc(sizeof *before * (size_t)n);
                    if (!before) goto done;
                    memcpy(before, p, sizeof *before * (size_t)n);
                }
                if (step_turn(d, m, p, &h, n, turns, t, j, o, &sp, (key * (K + 1) + j) * n, prompts, lens, cap, ans)) {
                    free(before);
                    goto done;
                }
                if (t == 0 && k == K) { /* first-turn figures at step j, and the transitions from j-1 */
                    double s = 0, solved = 0;
                    for (int i = 0; i < n; i++) {
                        s += p[i].reward;
                        solved += p[i].reward >= 1.0f;
                        v[i] = p[i].reward;
                        if (before)
                            transition_add(&ts, before[i].attempt, (size_t)before[i].attempt_len, before[i].reward,
                                           p[i].attempt, (size_t)p[i].attempt_len, p[i].reward);
                    }
                    out->first_score[j] = s / n, out->first_solved[j] = solved / n;
                    out->first_se[j] = task_eval_se_over_instances(v, n_inst, per);
                    if (before) {
                        out->right_wrong[j] = transition_share(&ts, ts.right_wrong);
                        out->wrong_right[j] = transition_share(&ts, ts.wrong_right);
                        out->improved[j] = transition_share(&ts, ts.improved);
                        out->worse[j] = transition_share(&ts, ts.worse);
                        out->copy_rate[j] = transition_share(&ts, ts.copies);
                    }
                }
                free(before);
            }
            for (int i = 0; i < n; i++) { /* the k-th attempt runs: its state and results carry over */
                size_t at = (size_t)i * turns + t;
                memcpy(h.answer[at], p[i].attempt, (size_t)p[i].attempt_len + 1);
                h.answer_len[at] = p[i].attempt_len;
                memcpy(h.results[at], p[i].results, sizeof h.results[at]);
                memcpy(p[i].state, p[i].after, sizeof p[i].state);
                p[i].ret += p[i].reward;
                p[i].solved += p[i].reward >= 1.0f;
                p[i].n_valid += p[i].valid;
            }
        }
        double r = 0, solved = 0, valid = 0;
        for (int i = 0; i < n; i++) {
            r += p[i].ret, solved += p[i].solved, valid += p[i].n_valid;
            v[i] = p[i].ret;
        }
        out->ret[k] = r / n, out->turns_solved[k] = solved / n, out->valid[k] = valid / ((double)n * turns);
        out->ret_se[k] = task_eval_se_over_instances(v, n_inst, per);
        if (dist_is_root())
            fprintf(stderr, "  eval k=%d/%d (%d turns): return %.4f (se %.4f) of %d, turns solved %.3f, valid %.3f\n", k, K,
                    turns, out->ret[k], out->ret_se[k], turns, out->turns_solved[k], out->valid[k]);
        if (k == K && dist_is_root())
            for (int c = 0; c < o->show && c < n_inst; c++)
                print_episode(o->show_to ? o->show_to : stdout, d, &p[(size_t)c * per], &h, c, c * per, turns, K);
    }
    if (dist_is_root())
        for (int j = 0; j <= K; j++)
            fprintf(stderr, "  first turn after %d improve steps: score %.4f (se %.4f), accuracy %.4f\n", j,
                    out->first_score[j], out->first_se[j], out->first_solved[j]);
    rc = 0;
done:
    free(p), free(ans), free(prompts), free(lens), free(v);
    free(h.answer), free(h.answer_len), free(h.results);
    if (rc) task_eval_episodes_free(out);
    return rc;
}
