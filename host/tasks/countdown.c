/* countdown: request "nums 3 7 25 50 target 175", answer an equation such as "(50-25)*7". */
#include "tasks/countdown.h"

#include <stdio.h>
#include <string.h>

enum { BUILD_TRIES = 64, WRONG_TRIES = 16 };

/* Combines k distinct numbers picked from nums[0..n) into one random expression: repeatedly two
 * random pool entries are joined by a random operator that keeps every value a positive integer
 * (+ and * always; - when the result is positive; / when exact with a divisor > 1). Returns the
 * root node. At most 4 numbers make at most 7 nodes and values below 100^4, so nothing fails. */
static int random_expression(expr_tree *t, task_rng *r, const int64_t *nums, int n, int k) {
    int order[COUNTDOWN_MAX_NUMBERS], pool[COUNTDOWN_MAX_NUMBERS];
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 0; i < k; i++) { /* partial Fisher-Yates: order[0..k) is a random k-subset */
        int j = i + (int)task_rng_below(r, (uint32_t)(n - i));
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
        pool[i] = expr_add_number(t, nums[order[i]]);
    }
    for (int size = k; size > 1; size--) {
        int i = (int)task_rng_below(r, (uint32_t)size);
        int j = (int)task_rng_below(r, (uint32_t)size - 1);
        if (j >= i) j++;
        int64_t a = t->node[pool[i]].value, b = t->node[pool[j]].value;
        char ops[4];
        int n_ops = 0;
        ops[n_ops++] = '+';
        ops[n_ops++] = '*';
        if (a - b > 0) ops[n_ops++] = '-';
        if (b > 1 && a % b == 0) ops[n_ops++] = '/';
        pool[i] = expr_add_op(t, ops[task_rng_below(r, (uint32_t)n_ops)], pool[i], pool[j]);
        pool[j] = pool[size - 1];
    }
    return pool[0];
}

static int is_given(const countdown_problem *p, int64_t v) {
    for (int i = 0; i < p->n; i++)
        if (p->numbers[i] == v) return 1;
    return 0;
}

int countdown_generate(const task_instance *inst, countdown_problem *p) {
    if (inst->domain != TASK_DOMAIN_COUNTDOWN ||
        task_knobs_check(&task_countdown, inst->knobs, NULL, 0))
        return -1;
    int n = inst->knobs[COUNTDOWN_KNOB_N];
    int64_t max = inst->knobs[COUNTDOWN_KNOB_MAX], target_max = inst->knobs[COUNTDOWN_KNOB_TARGET_MAX];
    task_rng r = task_rng_seeded(task_mix64(inst->seed));
    p->n = n;
    for (int i = 0; i < n; i++) p->numbers[i] = task_rng_range(&r, 1, max);
    for (int i = 1; i < n; i++) /* insertion sort into the canonical ascending order */
        for (int j = i; j > 0 && p->numbers[j - 1] > p->numbers[j]; j--) {
            int64_t tmp = p->numbers[j];
            p->numbers[j] = p->numbers[j - 1];
            p->numbers[j - 1] = tmp;
        }
    for (int t = 0; t < BUILD_TRIES; t++) {
        p->solution.count = 0;
        int k = (int)task_rng_range(&r, 2, n);
        int root = random_expression(&p->solution, &r, p->numbers, n, k);
        int64_t v = p->solution.node[root].value;
        if (v >= 1 && v <= target_max && !is_given(p, v)) {
            p->solution_root = root;
            p->target = v;
            return 0;
        }
    }
    /* Fallback: the two largest numbers added exceed every number and are <= 2*max <= target_max
     * (the knob ranges guarantee max <= 100 <= target_max / 2). */
    p->solution.count = 0;
    int a = expr_add_number(&p->solution, p->numbers[n - 2]);
    int b = expr_add_number(&p->solution, p->numbers[n - 1]);
    p->solution_root = expr_add_op(&p->solution, '+', a, b);
    p->target = p->solution.node[p->solution_root].value;
    return 0;
}

/* Matches the expression's numbers against the given ones, each given number at most once:
 * used[j] = 1 for the given numbers matched. Returns how many of the expression's numbers found
 * no given number left (0: a sub-multiset of the given numbers). */
static int match_numbers(const countdown_problem *p, const expr_result *e, int used[COUNTDOWN_MAX_NUMBERS]) {
    int missing = e->n_numbers > EXPR_MAX_NUMBERS ? e->n_numbers - EXPR_MAX_NUMBERS : 0;
    for (int j = 0; j < p->n; j++) used[j] = 0;
    for (int i = 0; i < e->n_numbers && i < EXPR_MAX_NUMBERS; i++) {
        int found = 0;
        for (int j = 0; j < p->n && !found; j++)
            if (!used[j] && p->numbers[j] == e->numbers[i]) used[j] = found = 1;
        missing += !found;
    }
    return missing;
}

/* ", unused 8 19" (the given numbers the attempt left out), or ", all used". 0, or -1 if cap is short. */
static int write_unused(const countdown_problem *p, const int used[COUNTDOWN_MAX_NUMBERS], char *buf, size_t cap) {
    size_t len = 0;
    for (int j = 0; j < p->n; j++) {
        if (used[j]) continue;
        int k = snprintf(buf + len, cap - len, len ? " %lld" : ", unused %lld", (long long)p->numbers[j]);
        if (k < 0 || (size_t)k >= cap - len) return -1;
        len += (size_t)k;
    }
    if (len == 0) snprintf(buf, cap, ", all used");
    return 0;
}

float countdown_score(const countdown_problem *p, const char *answer, size_t len, char *feedback,
                      size_t feedback_cap) {
    expr_result e;
    expr_parse(answer, len, &e);
    int used[COUNTDOWN_MAX_NUMBERS];
    char unused[48];
    float reward;
    int bad_feedback;
    /* The feedback says what the attempt lacks in terms the policy can act on: which way it
     * misses, and which given numbers are left to use (never a number it may not write). */
    if (e.status == EXPR_SYNTAX) {
        reward = 0.0f;
        bad_feedback = task_write_feedback(feedback, feedback_cap, "malformed");
    } else if (match_numbers(p, &e, used) > 0) {
        reward = 0.05f;
        bad_feedback = write_unused(p, used, unused, sizeof unused) ||
                       task_write_feedback(feedback, feedback_cap, "numbers not given%s", unused);
    } else if (e.status != EXPR_OK) {
        reward = 0.05f;
        bad_feedback = task_write_feedback(
            feedback, feedback_cap, e.status == EXPR_BAD_DIVISION ? "inexact division" : "overflow");
    } else if (e.value == p->target) {
        reward = 1.0f;
        bad_feedback = task_write_feedback(feedback, feedback_cap, "correct");
    } else {
        double t = (double)p->target, dist = (double)e.value - t;
        double closeness = 1.0 - (dist < 0 ? -dist : dist) / (t > 1.0 ? t : 1.0);
        reward = (float)(0.1 + 0.4 * (closeness > 0.0 ? closeness : 0.0));
        bad_feedback = write_unused(p, used, unused, sizeof unused) ||
                       task_write_feedback(feedback, feedback_cap, "too %s%s", dist < 0 ? "low" : "high", unused);
    }
    return bad_feedback ? -1.0f : reward;
}

static int render_request(const task_instance *inst, char *buf, size_t cap) {
    countdown_problem p;
    if (countdown_generate(inst, &p)) return TASK_ERR_ARG;
    size_t len = 0;
    for (int i = 0; i <= p.n; i++) {
        int k = i == 0   ? snprintf(buf + len, cap - len, "nums %lld", (long long)p.numbers[0])
                : i < p.n ? snprintf(buf + len, cap - len, " %lld", (long long)p.numbers[i])
                          : snprintf(buf + len, cap - len, " target %lld", (long long)p.target);
        if (k < 0 || (size_t)k >= cap - len) {
            if (cap) buf[0] = 0;
            return TASK_ERR_FIT;
        }
        len += (size_t)k;
    }
    return (int)len;
}

static float score(const task_instance *inst, const char *answer, size_t len, char *feedback,
                   size_t feedback_cap) {
    countdown_problem p;
    if (countdown_generate(inst, &p)) return -1.0f;
    return countdown_score(&p, answer, len, feedback, feedback_cap);
}

static int well_formed(const task_instance *inst, const char *answer, size_t len) {
    countdown_problem p;
    if (countdown_generate(inst, &p)) return -1;
    expr_result e;
    expr_parse(answer, len, &e);
    return e.status != EXPR_SYNTAX;
}

/* 0.9 with two numbers, 0.2 less per extra number. */
static float teacher_p_correct(const task_instance *inst) {
    return 0.9f - 0.2f * (float)(inst->knobs[COUNTDOWN_KNOB_N] - 2);
}

static int teacher_answer(const task_instance *inst, task_rng *r, float p_correct, char *buf,
                          size_t cap) {
    countdown_problem p;
    if (countdown_generate(inst, &p)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = teacher_p_correct(inst);
    if (task_rng_unit(r) < p_correct) {
        int n = expr_render(&p.solution, p.solution_root, buf, cap);
        return n < 0 ? TASK_ERR_FIT : n;
    }
    /* A wrong attempt: a valid equation over some of the numbers that misses the target; failing
     * that, the largest number alone (never the target by construction). */
    expr_tree t;
    for (int i = 0; i < WRONG_TRIES; i++) {
        t.count = 0;
        int k = (int)task_rng_range(r, 2, p.n);
        int root = random_expression(&t, r, p.numbers, p.n, k);
        if (t.node[root].value != p.target) {
            int n = expr_render(&t, root, buf, cap);
            return n < 0 ? TASK_ERR_FIT : n;
        }
    }
    int n = snprintf(buf, cap, "%lld", (long long)p.numbers[p.n - 1]);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) buf[0] = 0;
        return TASK_ERR_FIT;
    }
    return n;
}

/* ---- one-edit improvement (countdown_improve) ---- */

/* The search over prev's one-edit neighbours: the best one, and one drawn uniformly from all that
 * score strictly higher than prev (reservoir sampling: the rng is used only when one does). */
typedef struct {
    const countdown_problem *p;
    task_rng *r;
    float q0, best_q;           /* prev's reward; the best neighbour's (q0 when none is better) */
    int n_better;               /* neighbours scoring strictly above q0 */
    char best[TASK_ANSWER_CAP]; /* the best neighbour (the first found among equals) */
    char pick[TASK_ANSWER_CAP]; /* a uniformly drawn better neighbour */
} edit_search;

static void consider(edit_search *s, const char *text, int len) {
    if (len <= 0 || len >= TASK_ANSWER_CAP) return;
    float q = countdown_score(s->p, text, (size_t)len, NULL, 0);
    if (!(q > s->q0)) return;
    if (q > s->best_q) {
        s->best_q = q;
        memcpy(s->best, text, (size_t)len + 1);
    }
    if (task_rng_below(s->r, (uint32_t)++s->n_better) == 0) memcpy(s->pick, text, (size_t)len + 1);
}

/* prev[0..a) + ins + prev[b..len) as a candidate. */
static void consider_splice(edit_search *s, const char *prev, int len, int a, int b, const char *ins) {
    char text[TASK_ANSWER_CAP];
    int n = snprintf(text, sizeof text, "%.*s%s%.*s", a, prev, ins, len - b, prev + b);
    if (n > 0 && n < (int)sizeof text) consider(s, text, n);
}

static int is_op(char c) { return c == '+' || c == '-' || c == '*' || c == '/'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The one-edit neighbours of prev: each number replaced by a given number, each operator by
 * another, a number dropped with the operator next to it, or a given number joined to the whole
 * attempt (E+x, E-x, E*x, E/x, x-E, parenthesised where needed). */
static void search_edits(edit_search *s, const char *prev, int len) {
    static const char ops[] = "+-*/";
    char num[24];
    for (int i = 0; i < len; i++) {
        if (is_op(prev[i])) {
            for (int k = 0; k < 4; k++)
                if (ops[k] != prev[i]) consider_splice(s, prev, len, i, i + 1, (char[2]){ops[k], 0});
        } else if (is_digit(prev[i]) && (i == 0 || !is_digit(prev[i - 1]))) {
            int b = i;
            while (b < len && is_digit(prev[b])) b++;
            for (int j = 0; j < s->p->n; j++) {
                if (j > 0 && s->p->numbers[j] == s->p->numbers[j - 1]) continue;
                snprintf(num, sizeof num, "%lld", (long long)s->p->numbers[j]);
                consider_splice(s, prev, len, i, b, num);
            }
            if (i > 0 && is_op(prev[i - 1])) consider_splice(s, prev, len, i - 1, b, "");
            if (b < len && is_op(prev[b])) consider_splice(s, prev, len, i, b + 1, "");
        }
    }
    int sum_level = 0; /* whether prev has a + or - that a following * or / would bind into */
    for (int i = 0; i < len; i++) sum_level |= prev[i] == '+' || prev[i] == '-';
    const char *open = sum_level ? "(" : "", *close = sum_level ? ")" : "";
    char text[TASK_ANSWER_CAP];
    for (int j = 0; j < s->p->n; j++) {
        if (j > 0 && s->p->numbers[j] == s->p->numbers[j - 1]) continue;
        long long x = (long long)s->p->numbers[j];
        const int n_forms = 5;
        for (int f = 0; f < n_forms; f++) {
            int n = f == 0   ? snprintf(text, sizeof text, "%.*s+%lld", len, prev, x)
                    : f == 1 ? snprintf(text, sizeof text, "%.*s-%lld", len, prev, x)
                    : f == 2 ? snprintf(text, sizeof text, "%s%.*s%s*%lld", open, len, prev, close, x)
                    : f == 3 ? snprintf(text, sizeof text, "%s%.*s%s/%lld", open, len, prev, close, x)
                             : snprintf(text, sizeof text, "%lld-%s%.*s%s", x, open, len, prev, close);
            if (n > 0 && n < (int)sizeof text) consider(s, text, n);
        }
    }
}

int countdown_improve(const countdown_problem *p, const char *prev, size_t prev_len, task_rng *r,
                      float p_correct, char *buf, size_t cap) {
    int len = prev_len < TASK_ANSWER_CAP ? (int)prev_len : 0; /* a longer attempt has no neighbours */
    edit_search s = {.p = p, .r = r};
    s.q0 = s.best_q = countdown_score(p, prev, prev_len, NULL, 0);
    if (s.q0 >= 1.0f) { /* already right: keep it */
        if (prev_len >= cap) return TASK_ERR_FIT;
        memcpy(buf, prev, prev_len);
        buf[prev_len] = 0;
        return (int)prev_len;
    }
    search_edits(&s, prev, len);
    const char *out = NULL;
    if (s.n_better > 0) {
        out = task_rng_unit(r) < p_correct ? s.best : s.pick;
    } else if (task_rng_unit(r) >= p_correct) {
        /* Nothing one edit away is better (a malformed attempt, or a local optimum): the first
         * of WRONG_TRIES random equations that scores higher, else the solution. */
        expr_tree t;
        for (int i = 0; i < WRONG_TRIES; i++) {
            t.count = 0;
            int root = random_expression(&t, r, p->numbers, p->n, (int)task_rng_range(r, 2, p->n));
            int n = expr_render(&t, root, buf, cap);
            if (n < 0) return TASK_ERR_FIT;
            if (countdown_score(p, buf, (size_t)n, NULL, 0) > s.q0) return n;
        }
    }
    if (!out) {
        int n = expr_render(&p->solution, p->solution_root, buf, cap);
        return n < 0 ? TASK_ERR_FIT : n;
    }
    size_t n = strlen(out);
    if (n >= cap) return TASK_ERR_FIT;
    memcpy(buf, out, n + 1);
    return (int)n;
}

static int teacher_improve(const task_instance *inst, const char *prev, size_t prev_len, task_rng *r,
                           float p_correct, char *buf, size_t cap) {
    countdown_problem p;
    if (countdown_generate(inst, &p)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = teacher_p_correct(inst);
    return countdown_improve(&p, prev, prev_len, r, p_correct, buf, cap);
}

const task_domain task_countdown = {
    .name = "countdown",
    .id = TASK_DOMAIN_COUNTDOWN,
    .n_knobs = 3,
    .knobs = {{"n", 2, COUNTDOWN_MAX_NUMBERS, 3, "how many numbers are given"},
              {"max", 2, 100, 25, "largest given number (numbers are 1..max)"},
              {"target_max", 200, 9999, 999, "largest target"}},
    .render_request = render_request,
    .score = score,
    .teacher_answer = teacher_answer,
    .teacher_improve = teacher_improve,
    .teacher_p_correct = teacher_p_correct,
    .well_formed = well_formed,
};
