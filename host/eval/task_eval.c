#include "eval/task_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "rl/completion.h"
#include "rl/transitions.h"
#include "rl/rollout.h"
#include "model/tokenizer.h"

/* A chain of attempts at one held-out instance. */
typedef struct {
    task_instance inst;
    char answer[TASK_ANSWER_CAP];
    int answer_len;               /* the raw attempt bytes shown to the next step */
    char feedback[TASK_FEEDBACK_CAP];
    float reward;
    int valid;
} chain;

double task_eval_se_over_instances(const double *v, int n_inst, int per) {
    double mean = 0, ss = 0;
    for (int i = 0; i < n_inst * per; i++) mean += v[i];
    mean /= (double)n_inst * per;
    for (int i = 0; i < n_inst; i++) {
        double m = 0;
        for (int j = 0; j < per; j++) m += v[(size_t)i * per + j];
        ss += (m / per - mean) * (m / per - mean);
    }
    return n_inst > 1 ? sqrt(ss / (n_inst - 1) / n_inst) : 0.0;
}

int task_eval_generate(gpt_model *m, const int *prompts, const int *lens, int stride, int n, int max_new,
                       const struct exitrl_sampling *sp, int seq_offset, task_eval_answer *out) {
    rollout_engine eng = {0};
    rollout_output ro = {0};
    int rc = -1, max_len = 1;
    for (int i = 0; i < n; i++) max_len = lens[i] > max_len ? lens[i] : max_len;
    if (max_len >= m->cfg.max_seq) {
        fprintf(stderr, "exitrl: an evaluation prompt of %d tokens leaves no room to answer (context %d)\n", max_len,
                m->cfg.max_seq);
        return -1;
    }
    int S = max_len + max_new < m->cfg.max_seq ? max_len + max_new : m->cfg.max_seq;
    int B = n < 256 ? n : 256;
    char err[256];
    if (rollout_create(&eng, m, B, S) || rollout_output_alloc(&ro, n, S, m->cfg.d_model)) goto done;
    if (rollout_generate(&eng, prompts, lens, stride, n, max_new, sp, seq_offset, &ro, err, sizeof err)) {
        fprintf(stderr, "exitrl: evaluation rollout failed: %s\n", err);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const int *gen = ro.tokens + (size_t)i * ro.S + ro.prompt_len[i];
        task_eval_answer *a = &out[i];
        a->len = completion_answer(gen, ro.gen_len[i], ro.hit_eos[i], a->answer, sizeof a->answer);
        /* The next step is shown the raw attempt: its bytes before the first special token. */
        a->raw_len = completion_raw(gen, ro.gen_len[i], a->raw, TASK_ANSWER_CAP - 1);
        a->raw[a->raw_len] = 0;
    }
    rc = 0;
done:
    rollout_destroy(&eng);
    rollout_output_free(&ro);
    return rc;
}

/* One step for every chain: base prompts at step 0, improve prompts after. Generates one answer per
 * chain and scores it. */
static int step_all(const task_domain *d, gpt_model *m, chain *ch, int n, int step, int max_new, int feedback,
                    const struct exitrl_sampling *sp, int seq_offset) {
    const int cap = m->cfg.max_seq - 1;
    int *prompts = calloc((size_t)n * cap, sizeof(int)), *lens = calloc((size_t)n, sizeof(int));
    task_eval_answer *ans = malloc(sizeof *ans * (size_t)n);
    int rc = -1;
    if (!prompts || !lens || !ans) goto done;
    for (int i = 0; i < n; i++) {
        lens[i] = step == 0 ? task_render_prompt(d, &ch[i].inst, TASK_PROMPT_BASE, NULL, 0, NULL, 0,
                                                 prompts + (size_t)i * cap, cap)
                            : task_render_prompt(d, &ch[i].inst, TASK_PROMPT_IMPROVE, ch[i].answer,
                                                 (size_t)ch[i].answer_len, feedback ? ch[i].feedback : NULL,
                                                 feedback ? strlen(ch[i].feedback) : 0, prompts + (size_t)i * cap, cap);
        if (lens[i] <= 0) {
            fprintf(stderr, "exitrl: an evaluation prompt does not fit the context of %d tokens\n", m->cfg.max_seq);
            goto done;
        }
    }
    if (task_eval_generate(m, prompts, lens, cap, n, max_new, sp, seq_offset, ans)) goto done;
    for (int i = 0; i < n; i++) {
        const task_eval_answer *a = &ans[i];
        float r = a->len < 0 ? 0.0f : d->score(&ch[i].inst, a->answer, (size_t)a->len, ch[i].feedback, sizeof ch[i].feedback);
        if (a->len < 0) snprintf(ch[i].feedback, sizeof ch[i].feedback, "malformed");
        ch[i].reward = r < 0 ? 0.0f : r;
        ch[i].valid = a->len >= 0 && d->well_formed(&ch[i].inst, a->answer, (size_t)a->len) == 1;
        memcpy(ch[i].answer, a->raw, (size_t)a->raw_len + 1);
        ch[i].answer_len = a->raw_len;
    }
    rc = 0;
done:
    free(prompts);
    free(lens);
    free(ans);
    return rc;
}

static chain *draw_chains(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], int n_inst, int per) {
    chain *ch = calloc((size_t)n_inst * per, sizeof *ch);
    if (!ch) return NULL;
    for (int i = 0; i < n_inst; i++) {
        char why[160];
        if (task_draw(d, knobs, TASK_SPLIT_HELDOUT, TASK_EVAL_STREAM_SEED, (uint64_t)i, &ch[i * per].inst, why,
                      sizeof why)) {
            fprintf(stderr, "exitrl: %s\n", why);
            free(ch);
            return NULL;
        }
        for (int j = 1; j < per; j++) ch[i * per + j].inst = ch[i * per].inst;
    }
    return ch;
}

int task_eval_base(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], gpt_model *m, int n, int max_new,
                   task_eval_base_result *out) {
    chain *ch = draw_chains(d, knobs, n, 1);
    if (!ch) return -1;
    struct exitrl_sampling greedy = {1.0f, 0, 1.0f, 1, TOK_EOS, 0};
    int rc = step_all(d, m, ch, n, 0, max_new, 0, &greedy, 0);
    if (rc == 0) {
        double s = 0, solved = 0, valid = 0;
        for (int i = 0; i < n; i++) {
            s += ch[i].reward;
            solved += ch[i].reward >= 1.0f;
            valid += ch[i].valid;
        }
        out->score = s / n, out->solved = solved / n, out->valid = valid / n;
    }
    free(ch);
    return rc;
}

/* Every per-step array of a result, so they are allocated and freed in one place. */
enum { N_STEP_ARRAYS = 14 };
static void step_arrays(task_eval_steps_result *r, double **a[N_STEP_ARRAYS]) {
    double **p[N_STEP_ARRAYS] = {&r->score, &r->score_se, &r->solved, &r->valid, &r->net_corrections, &r->right_right,
                                 &r->right_wrong, &r->wrong_right, &r->wrong_wrong, &r->improved, &r->worse,
                                 &r->unchanged, &r->copy_rate, &r->edit_mean};
    memcpy(a, p, sizeof p);
}

void task_eval_steps_free(task_eval_steps_result *r) {
    double **a[N_STEP_ARRAYS];
    step_arrays(r, a);
    for (int i = 0; i < N_STEP_ARRAYS; i++) free(*a[i]);
    memset(r, 0, sizeof *r);
}

void task_eval_print_escaped(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '"') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c >= 32 && c < 127) fputc(c, f);
        else fprintf(f, "\\x%02x", c);
    }
}

/* One shown chain's record of every step. */
typedef struct {
    char answer[TASK_ANSWER_CAP];
    int answer_len;
    char feedback[TASK_FEEDBACK_CAP];
    float reward;
} shown_step;

static void print_chains(FILE *f, const task_domain *d, const chain *ch, int per, const shown_step *shown, int n_show,
                         int K) {
    for (int s = 0; s < n_show; s++) {
        char request[TASK_REQUEST_CAP];
        const chain *c = &ch[(size_t)s * per];
        if (d->render_request(&c->inst, request, sizeof request) < 0) snprintf(request, sizeof request, "?");
        fprintf(f, "chain %d (held-out instance %d): %s\n", s + 1, s, request);
        for (int k = 0; k <= K; k++) {
            const shown_step *st = &shown[(size_t)s * (K + 1) + k];
            fprintf(f, "  k=%-2d score %.3f  attempt \"", k, st->reward);
            task_eval_print_escaped(f, st->answer, (size_t)st->answer_len);
            fprintf(f, "\"  feedback \"");
            task_eval_print_escaped(f, st->feedback, strlen(st->feedback));
            fprintf(f, "\"\n");
        }
    }
}

int task_eval_steps(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], gpt_model *m,
                    const task_eval_options *o, task_eval_steps_result *out) {
    memset(out, 0, sizeof *out);
    int n = o->n_instances * o->n_samples, K = o->K, ok = 1;
    int n_show = o->show < o->n_instances ? o->show : o->n_instances;
    chain *ch = draw_chains(d, knobs, o->n_instances, o->n_samples);
    chain *prev = malloc(sizeof(chain) * n);
    double *v = malloc(sizeof(double) * (size_t)n); /* the chains' rewards at a step */
    shown_step *shown = n_show > 0 ? calloc((size_t)n_show * (K + 1), sizeof *shown) : NULL;
    out->K = K;
    double **arrays[N_STEP_ARRAYS];
    step_arrays(out, arrays);
    for (int i = 0; i < N_STEP_ARRAYS; i++) ok &= (*arrays[i] = calloc(K + 1, sizeof(double))) != NULL;
    if (!ch || !prev || !v || (n_show > 0 && !shown) || !ok) {
        free(ch);
        free(prev);
        free(v);
        free(shown);
        task_eval_steps_free(out);
        return -1;
    }
    struct exitrl_sampling sp = {o->temperature > 0 ? o->temperature : 1.0f, 0, 1.0f, o->temperature <= 0, TOK_EOS,
                                 o->seed};
    int rc = 0;
    for (int k = 0; k <= K && rc == 0; k++) {
        /* Each step draws fresh random numbers: sequence ids are offset by the step. Each rank steps
         * its share of the chains (sequence ids stay global, so the samples are those of one
         * process), then every rank gets all chains and computes the same statistics. */
        int64_t lo, hi;
        dist_share(n, &lo, &hi);
        rc = hi > lo ? step_all(d, m, ch + lo, (int)(hi - lo), k, o->max_new, o->feedback, &sp, k * n + (int)lo) : 0;
        if (dist_or(rc != 0, "evaluation step")) {
            rc = -1;
            break;
        }
        dist_allgather(ch, sizeof *ch, n, "evaluation chains");
        double s = 0, solved = 0, valid = 0;
        transition_stats ts = {0};
        for (int i = 0; i < n; i++) {
            s += ch[i].reward;
            solved += ch[i].reward >= 1.0f;
            valid += ch[i].valid;
            if (k > 0) {
                transition_add(&ts, prev[i].answer, (size_t)prev[i].answer_len, prev[i].reward, ch[i].answer,
                               (size_t)ch[i].answer_len, ch[i].reward);
                transition_classes_add(&out->by_feedback, prev[i].feedback, prev[i].answer, (size_t)prev[i].answer_len,
                                       prev[i].reward, ch[i].answer, (size_t)ch[i].answer_len, ch[i].reward);
            }
            prev[i] = ch[i];
        }
        for (int c = 0; c < n_show; c++) {
            const chain *src = &ch[(size_t)c * o->n_samples];
            shown_step *dst = &shown[(size_t)c * (K + 1) + k];
            memcpy(dst->answer, src->answer, sizeof dst->answer);
            dst->answer_len = src->answer_len;
            memcpy(dst->feedback, src->feedback, sizeof dst->feedback);
            dst->reward = src->reward;
        }
        out->score[k] = s / n, out->solved[k] = solved / n, out->valid[k] = valid / n;
        for (int i = 0; i < n; i++) v[i] = ch[i].reward;
        out->score_se[k] = task_eval_se_over_instances(v, o->n_instances, o->n_samples);
        out->net_corrections[k] = (double)(ts.wrong_right - ts.right_wrong) / n;
        out->right_right[k] = transition_share(&ts, ts.right_right);
        out->right_wrong[k] = transition_share(&ts, ts.right_wrong);
        out->wrong_right[k] = transition_share(&ts, ts.wrong_right);
        out->wrong_wrong[k] = transition_share(&ts, ts.wrong_wrong);
        out->improved[k] = transition_share(&ts, ts.improved);
        out->worse[k] = transition_share(&ts, ts.worse);
        out->unchanged[k] = transition_share(&ts, ts.unchanged);
        out->copy_rate[k] = transition_share(&ts, ts.copies);
        out->edit_mean[k] = ts.n ? ts.edit_sum / ts.n : 0.0;
        if (!dist_is_root()) continue; /* the progress lines come from rank 0 */
        if (k == 0)
            fprintf(stderr, "  eval step %d/%d: score %.4f (se %.4f) solved %.4f valid %.3f\n", k, K, out->score[k],
                    out->score_se[k], out->solved[k], out->valid[k]);
        else
            fprintf(stderr, "  eval step %d/%d: score %.4f (se %.4f) solved %.4f valid %.3f | R->R %.3f R->W %.3f W->R %.3f "
                            "W->W %.3f | up %.3f down %.3f same %.3f | copy %.3f edit %.1f\n",
                    k, K, out->score[k], out->score_se[k], out->solved[k], out->valid[k], out->right_right[k], out->right_wrong[k],
                    out->wrong_right[k], out->wrong_wrong[k], out->improved[k], out->worse[k], out->unchanged[k],
                    out->copy_rate[k], out->edit_mean[k]);
    }
    if (rc == 0 && n_show > 0 && dist_is_root()) print_chains(o->show_to ? o->show_to : stdout, d, ch, o->n_samples, shown, n_show, K);
    free(ch);
    free(prev);
    free(v);
    free(shown);
    if (rc) task_eval_steps_free(out);
    return rc;
}
