/* arith: request "3+4*(2-7)=", answer "-17", reward 0/1. */
#include "tasks/arith.h"

#include <stdio.h>

#include "tasks/scan.h"

/* A random tree with `ops` operators; each operator is drawn among those whose result stays in
 * +-ARITH_VALUE_BOUND. One of + and - always qualifies: for operands within the bound, a-b does
 * when their signs agree and a+b does when they differ. */
static int build(expr_tree *t, task_rng *r, int ops, int max_operand) {
    if (ops == 0) return expr_add_number(t, task_rng_range(r, 0, max_operand));
    int left_ops = (int)task_rng_below(r, (uint32_t)ops);
    int l = build(t, r, left_ops, max_operand);
    int rr = build(t, r, ops - 1 - left_ops, max_operand);
    char allowed[3];
    int n = 0;
    for (const char *op = "+-*"; *op; op++) {
        int64_t v;
        if (expr_apply(*op, t->node[l].value, t->node[rr].value, &v) == EXPR_OK &&
            v >= -ARITH_VALUE_BOUND && v <= ARITH_VALUE_BOUND)
            allowed[n++] = *op;
    }
    return expr_add_op(t, allowed[task_rng_below(r, (uint32_t)n)], l, rr);
}

int arith_generate(const task_instance *inst, arith_problem *p) {
    if (inst->domain != TASK_DOMAIN_ARITH || task_knobs_check(&task_arith, inst->knobs, NULL, 0))
        return -1;
    task_rng r = task_rng_seeded(task_mix64(inst->seed));
    p->tree.count = 0;
    /* ops <= 8 gives at most 17 nodes, within EXPR_MAX_NODES, so no node insertion fails. */
    p->root = build(&p->tree, &r, inst->knobs[ARITH_KNOB_OPS], inst->knobs[ARITH_KNOB_MAX]);
    p->answer = p->tree.node[p->root].value;
    return 0;
}

/* Whole answer must be [ws] ['-'] digits [ws]; at most 18 digits. */
static int parse_integer(const char *s, size_t len, int64_t *value) {
    size_t pos = 0;
    scan_skip_space(s, len, &pos);
    int negative = pos < len && s[pos] == '-';
    if (negative) pos++;
    int too_long;
    int64_t v = 0;
    if (scan_digits(s, len, &pos, 18, &v, &too_long) == 0 || too_long) return -1;
    scan_skip_space(s, len, &pos);
    if (pos != len) return -1;
    *value = negative ? -v : v;
    return 0;
}

float arith_score(const arith_problem *p, const char *answer, size_t len, char *feedback,
                  size_t feedback_cap) {
    int64_t v;
    float reward;
    const char *msg;
    if (parse_integer(answer, len, &v)) {
        reward = 0.0f;
        msg = "not an integer";
    } else if (v == p->answer) {
        reward = 1.0f;
        msg = "correct";
    } else {
        reward = 0.0f;
        msg = "incorrect";
    }
    if (task_write_feedback(feedback, feedback_cap, "%s", msg)) return -1.0f;
    return reward;
}

static int render_request(const task_instance *inst, char *buf, size_t cap) {
    arith_problem p;
    if (arith_generate(inst, &p)) return TASK_ERR_ARG;
    int n = expr_render(&p.tree, p.root, buf, cap);
    if (n < 0 || (size_t)n + 1 >= cap) return TASK_ERR_FIT;
    buf[n++] = '=';
    buf[n] = 0;
    return n;
}

static float score(const task_instance *inst, const char *answer, size_t len, char *feedback,
                   size_t feedback_cap) {
    arith_problem p;
    if (arith_generate(inst, &p)) return -1.0f;
    return arith_score(&p, answer, len, feedback, feedback_cap);
}

static int well_formed(const task_instance *inst, const char *answer, size_t len) {
    arith_problem p;
    int64_t v;
    if (arith_generate(inst, &p)) return -1;
    return parse_integer(answer, len, &v) == 0;
}

/* 0.95 for one operator, 0.1 less per extra operator, never below 0.3. */
static float teacher_p_correct(const task_instance *inst) {
    float p = 0.95f - 0.1f * (float)(inst->knobs[ARITH_KNOB_OPS] - 1);
    return p < 0.3f ? 0.3f : p;
}

/* Wrong answers imitate common slips: off by a little, a lost sign, a carry error of 10 or 20. */
static int64_t wrong_answer(int64_t right, task_rng *r) {
    int64_t sign = task_rng_below(r, 2) ? 1 : -1;
    switch (task_rng_below(r, 3)) {
    case 0: return right + sign * (1 + (int64_t)task_rng_below(r, 3));
    case 1: return right != 0 ? -right : sign;
    default: return right + sign * 10 * (1 + (int64_t)task_rng_below(r, 2));
    }
}

static int teacher_answer(const task_instance *inst, task_rng *r, float p_correct, char *buf,
                          size_t cap) {
    arith_problem p;
    if (arith_generate(inst, &p)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = teacher_p_correct(inst);
    int64_t v = task_rng_unit(r) < p_correct ? p.answer : wrong_answer(p.answer, r);
    int n = snprintf(buf, cap, "%lld", (long long)v);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) buf[0] = 0;
        return TASK_ERR_FIT;
    }
    return n;
}

const task_domain task_arith = {
    .name = "arith",
    .id = TASK_DOMAIN_ARITH,
    .n_knobs = 2,
    .knobs = {{"ops", 1, 8, 2, "binary operators (+ - *) in the expression"},
              {"max", 1, 999, 9, "largest operand (operands are 0..max)"}},
    .render_request = render_request,
    .score = score,
    .teacher_answer = teacher_answer,
    .teacher_p_correct = teacher_p_correct,
    .well_formed = well_formed,
};
