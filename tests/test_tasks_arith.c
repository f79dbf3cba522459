/* arith: expression rendering, the generator against an independent evaluator, knob effects,
 * hand-worked verifier cases, determinism and the noisy teacher. */
#include <string.h>

#include "tasks/arith.h"
#include "test_util.h"

/* ---- an independent evaluator of request text "expr=" (precedence climbing over + - *) ---- */
typedef struct {
    const char *s;
    int pos, bad;
} eval_state;

static long long eval_sum(eval_state *e);

static long long eval_atom(eval_state *e) {
    if (e->s[e->pos] == '(') {
        e->pos++;
        long long v = eval_sum(e);
        if (e->s[e->pos] != ')') e->bad = 1;
        e->pos++;
        return v;
    }
    if (e->s[e->pos] < '0' || e->s[e->pos] > '9') {
        e->bad = 1;
        return 0;
    }
    long long v = 0;
    while (e->s[e->pos] >= '0' && e->s[e->pos] <= '9') v = v * 10 + (e->s[e->pos++] - '0');
    return v;
}

static long long eval_product(eval_state *e) {
    long long v = eval_atom(e);
    while (!e->bad && e->s[e->pos] == '*') {
        e->pos++;
        v *= eval_atom(e);
    }
    return v;
}

static long long eval_sum(eval_state *e) {
    long long v = eval_product(e);
    while (!e->bad && (e->s[e->pos] == '+' || e->s[e->pos] == '-')) {
        char op = e->s[e->pos++];
        long long r = eval_product(e);
        v = op == '+' ? v + r : v - r;
    }
    return v;
}

/* Evaluates "expr=" and checks it ends right there; *ok = 0 if the text is not of that form. */
static long long eval_request(const char *s, int *ok) {
    eval_state e = {s, 0, 0};
    long long v = eval_sum(&e);
    *ok = !e.bad && s[e.pos] == '=' && s[e.pos + 1] == 0;
    return v;
}

static task_instance arith_instance(uint64_t seed, int ops, int max) {
    task_instance in = {.domain = TASK_DOMAIN_ARITH, .seed = seed, .knobs = {ops, max}};
    return in;
}

static float score_text(const arith_problem *p, const char *text, char *fb) {
    return arith_score(p, text, strlen(text), fb, TASK_FEEDBACK_CAP);
}

static void test_render(void) {
    expr_tree t = {.count = 0};
    int n3 = expr_add_number(&t, 3), n4 = expr_add_number(&t, 4);
    int n2 = expr_add_number(&t, 2), n7 = expr_add_number(&t, 7);
    int sub = expr_add_op(&t, '-', n2, n7);
    int mul = expr_add_op(&t, '*', n4, sub);
    int add = expr_add_op(&t, '+', n3, mul);
    char buf[64];
    CHECK(expr_render(&t, add, buf, sizeof buf) == 9 && strcmp(buf, "3+4*(2-7)") == 0, "got %s", buf);
    CHECK(t.node[add].value == -17, "value %lld", (long long)t.node[add].value);
    CHECK(expr_render(&t, add, buf, 9) == -1, "a 9-byte buffer cannot hold 9 chars and a NUL");
    CHECK(expr_render(&t, add, buf, 10) == 9, "a 10-byte buffer can");

    /* (8-3)-2 needs no parentheses, 8-(3-2) does; (1+2)*(3+4) keeps both pairs */
    expr_tree u = {.count = 0};
    int a = expr_add_number(&u, 8), b = expr_add_number(&u, 3), c = expr_add_number(&u, 2);
    int left = expr_add_op(&u, '-', expr_add_op(&u, '-', a, b), c);
    int right = expr_add_op(&u, '-', a, expr_add_op(&u, '-', b, c));
    CHECK(expr_render(&u, left, buf, sizeof buf) > 0 && strcmp(buf, "8-3-2") == 0, "got %s", buf);
    CHECK(expr_render(&u, right, buf, sizeof buf) > 0 && strcmp(buf, "8-(3-2)") == 0, "got %s", buf);
    expr_tree w = {.count = 0};
    int s1 = expr_add_op(&w, '+', expr_add_number(&w, 1), expr_add_number(&w, 2));
    int s2 = expr_add_op(&w, '+', expr_add_number(&w, 3), expr_add_number(&w, 4));
    int prod = expr_add_op(&w, '*', s1, s2);
    CHECK(expr_render(&w, prod, buf, sizeof buf) > 0 && strcmp(buf, "(1+2)*(3+4)") == 0, "got %s", buf);
    CHECK(w.node[prod].value == 21, "value %lld", (long long)w.node[prod].value);
}

static void test_verifier_hand_cases(void) {
    arith_problem p = {.answer = -17};
    char fb[TASK_FEEDBACK_CAP];
    CHECK(score_text(&p, "-17", fb) == 1.0f && strcmp(fb, "correct") == 0, "fb %s", fb);
    CHECK(score_text(&p, "  -17\n", fb) == 1.0f, "surrounding whitespace is allowed");
    CHECK(score_text(&p, "-017", fb) == 1.0f, "leading zeros read as the same integer");
    CHECK(score_text(&p, "17", fb) == 0.0f && strcmp(fb, "incorrect") == 0, "fb %s", fb);
    CHECK(score_text(&p, "-16", fb) == 0.0f, "off by one");
    CHECK(score_text(&p, "-17x", fb) == 0.0f && strcmp(fb, "not an integer") == 0, "fb %s", fb);
    CHECK(score_text(&p, "", fb) == 0.0f && strcmp(fb, "not an integer") == 0, "empty");
    CHECK(score_text(&p, "-", fb) == 0.0f, "a lone sign");
    CHECK(score_text(&p, "--17", fb) == 0.0f, "double sign");
    CHECK(score_text(&p, "- 17", fb) == 0.0f, "space after the sign");
    CHECK(score_text(&p, "-1 7", fb) == 0.0f, "two numbers");
    CHECK(score_text(&p, "+17", fb) == 0.0f, "no plus sign");
    CHECK(score_text(&p, "-3-14", fb) == 0.0f, "an expression is not an answer");
    CHECK(score_text(&p, "1234567890123456789", fb) == 0.0f, "19 digits are not an integer");
    CHECK(arith_score(&p, "-17\0", 4, fb, sizeof fb) == 0.0f, "an embedded NUL byte is garbage");
    CHECK(arith_score(&p, "-17999", 3, fb, sizeof fb) == 1.0f, "only len bytes are read");
    arith_problem zero = {.answer = 0};
    CHECK(score_text(&zero, "-0", fb) == 1.0f, "-0 is 0");
    CHECK(score_text(&zero, "0", fb) == 1.0f, "0");
    CHECK(arith_score(&p, "-17", 3, NULL, 0) == 1.0f, "feedback is optional");
    CHECK(arith_score(&p, "-17", 3, fb, 4) == -1.0f, "\"correct\" does not fit in 4 bytes");
    CHECK(fb[0] == 0, "a feedback that does not fit leaves \"\"");
}

static void test_generator(void) {
    const int settings[][2] = {{1, 9}, {2, 9}, {4, 20}, {8, 999}, {8, 1}};
    for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++) {
        int ops = settings[s][0], max = settings[s][1];
        int bad_eval = 0, bad_ops = 0, bad_operand = 0, bad_bound = 0;
        for (uint64_t seed = 0; seed < 3000; seed++) {
            task_instance in = arith_instance(seed * 7919 + s, ops, max);
            arith_problem p;
            char req[TASK_REQUEST_CAP];
            if (arith_generate(&in, &p) || task_arith.render_request(&in, req, sizeof req) < 0) {
                CHECK(0, "generation failed for seed %llu", (unsigned long long)seed);
                return;
            }
            int ok;
            long long v = eval_request(req, &ok);
            if (!ok || v != p.answer) bad_eval++;
            int n_ops = 0;
            long long operand = 0;
            for (const char *c = req; *c; c++) {
                if (*c == '+' || *c == '-' || *c == '*') n_ops++;
                if (*c >= '0' && *c <= '9') {
                    operand = operand * 10 + (*c - '0');
                    if (operand > max) bad_operand++;
                } else {
                    operand = 0;
                }
            }
            if (n_ops != ops) bad_ops++;
            if (p.answer > ARITH_VALUE_BOUND || p.answer < -ARITH_VALUE_BOUND) bad_bound++;
        }
        CHECK(bad_eval == 0, "ops=%d max=%d: %d requests disagree with the independent evaluator",
              ops, max, bad_eval);
        CHECK(bad_ops == 0, "ops=%d: %d requests have another operator count", ops, bad_ops);
        CHECK(bad_operand == 0, "max=%d: %d operands above max", max, bad_operand);
        CHECK(bad_bound == 0, "%d answers outside the value bound", bad_bound);
    }
    /* every operator occurs */
    int seen[3] = {0};
    for (uint64_t seed = 0; seed < 200; seed++) {
        task_instance in = arith_instance(seed, 3, 9);
        char req[TASK_REQUEST_CAP];
        task_arith.render_request(&in, req, sizeof req);
        seen[0] += strchr(req, '+') != NULL;
        seen[1] += strchr(req, '-') != NULL;
        seen[2] += strchr(req, '*') != NULL;
    }
    CHECK(seen[0] > 50 && seen[1] > 50 && seen[2] > 50, "operator use %d %d %d", seen[0], seen[1],
          seen[2]);
}

static void test_determinism_and_validation(void) {
    task_instance in = arith_instance(123456789, 5, 50);
    char a[TASK_REQUEST_CAP], b[TASK_REQUEST_CAP], c[TASK_REQUEST_CAP];
    task_arith.render_request(&in, a, sizeof a);
    task_arith.render_request(&in, b, sizeof b);
    CHECK(strcmp(a, b) == 0, "same instance, same request: %s vs %s", a, b);
    task_instance other = in;
    other.seed++;
    task_arith.render_request(&other, c, sizeof c);
    CHECK(strcmp(a, c) != 0, "neighbouring seeds differ: %s vs %s", a, c);

    arith_problem p;
    task_instance bad = arith_instance(1, 9, 9);
    CHECK(arith_generate(&bad, &p) == -1, "ops 9 is out of range");
    bad = arith_instance(1, 2, 0);
    CHECK(arith_generate(&bad, &p) == -1, "max 0 is out of range");
    bad = arith_instance(1, 2, 9);
    bad.knobs[3] = 1;
    CHECK(arith_generate(&bad, &p) == -1, "unused knob slots must be 0");
    bad = arith_instance(1, 2, 9);
    bad.domain = TASK_DOMAIN_KNAPSACK;
    CHECK(arith_generate(&bad, &p) == -1, "another domain's instance");
    CHECK(task_arith.render_request(&bad, a, sizeof a) == TASK_ERR_ARG, "render rejects it");
    CHECK(task_arith.score(&bad, "1", 1, NULL, 0) == -1.0f, "score rejects it");
    task_instance ok = arith_instance(1, 8, 999);
    CHECK(task_arith.render_request(&ok, a, 4) == TASK_ERR_FIT, "a 4-byte request buffer is too small");
}

static void test_teacher(void) {
    char ans[TASK_ANSWER_CAP], fb[TASK_FEEDBACK_CAP];
    task_rng r = task_rng_seeded(99);
    int right_at_1 = 0, wrong_at_0 = 0, malformed = 0, right_default = 0;
    const int N = 4000;
    task_instance in3 = arith_instance(0, 3, 9);
    float p_default = task_arith.teacher_p_correct(&in3);
    CHECK(fabsf(p_default - 0.75f) < 1e-6f, "ops=3 default accuracy %f", p_default);
    for (int i = 0; i < N; i++) {
        task_instance in = arith_instance((uint64_t)i * 31 + 5, 1 + i % 8, 30);
        int n = task_arith.teacher_answer(&in, &r, 1.0f, ans, sizeof ans);
        right_at_1 += n > 0 && task_arith.score(&in, ans, (size_t)n, fb, sizeof fb) == 1.0f;
        n = task_arith.teacher_answer(&in, &r, 0.0f, ans, sizeof ans);
        float s = task_arith.score(&in, ans, (size_t)n, fb, sizeof fb);
        wrong_at_0 += s == 0.0f;
        malformed += strcmp(fb, "incorrect") != 0;
        in3.seed = (uint64_t)i;
        n = task_arith.teacher_answer(&in3, &r, -1.0f, ans, sizeof ans);
        right_default += task_arith.score(&in3, ans, (size_t)n, NULL, 0) == 1.0f;
    }
    CHECK(right_at_1 == N, "p_correct=1: %d of %d right", right_at_1, N);
    CHECK(wrong_at_0 == N, "p_correct=0: %d of %d wrong", wrong_at_0, N);
    CHECK(malformed == 0, "%d wrong teacher answers were not well-formed integers", malformed);
    double rate = (double)right_default / N; /* binomial sd ~0.007 */
    CHECK(fabs(rate - p_default) < 0.035, "default accuracy %.3f, expected %.3f", rate, p_default);
    task_instance in = arith_instance(3, 2, 9);
    CHECK(task_arith.teacher_answer(&in, &r, 1.0f, ans, 1) == TASK_ERR_FIT, "1-byte buffer");
    /* the same rng state gives the same answer */
    task_rng r1 = task_rng_seeded(7), r2 = task_rng_seeded(7);
    char a1[TASK_ANSWER_CAP], a2[TASK_ANSWER_CAP];
    int same = 1;
    for (int i = 0; i < 100; i++) {
        task_instance x = arith_instance((uint64_t)i, 4, 20);
        task_arith.teacher_answer(&x, &r1, 0.5f, a1, sizeof a1);
        task_arith.teacher_answer(&x, &r2, 0.5f, a2, sizeof a2);
        same &= strcmp(a1, a2) == 0;
    }
    CHECK(same, "teacher answers are a function of the rng state");
}

int main(void) {
    test_render();
    test_verifier_hand_cases();
    test_generator();
    test_determinism_and_validation();
    test_teacher();
    return test_finish("test_tasks_arith");
}
