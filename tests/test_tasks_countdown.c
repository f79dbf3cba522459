/* countdown: hand-worked verifier cases, the expression parser, solvability of generated instances
 * by an independent brute-force solver, generator constraints, determinism and the teacher. */
#include <string.h>

#include "tasks/countdown.h"
#include "test_util.h"

static float score_text(const countdown_problem *p, const char *text, char *fb) {
    return countdown_score(p, text, strlen(text), fb, TASK_FEEDBACK_CAP);
}

static void test_hand_cases(void) {
    countdown_problem p = {.n = 4, .numbers = {3, 7, 25, 50}, .target = 175};
    char fb[TASK_FEEDBACK_CAP];
    CHECK(score_text(&p, "25*7", fb) == 1.0f && strcmp(fb, "correct") == 0, "fb %s", fb);
    CHECK(score_text(&p, "(50-25)*7", fb) == 1.0f, "with parentheses");
    CHECK(score_text(&p, " ( 50 - 25 ) * 7 \n", fb) == 1.0f, "with spaces");
    CHECK(score_text(&p, "7*(50/(3+7))", fb) == 0.05f, "7 used twice");
    CHECK(score_text(&p, "(50+3*25)*7/5", fb) == 0.05f && strcmp(fb, "numbers not given, all used") == 0,
          "5 is not given (and 3 7 25 50 are matched): %s", fb);
    /* partial credit 0.1 + 0.4 * (1 - |v - 175| / 175) */
    CHECK(test_near(score_text(&p, "50*3", fb), 0.1 + 0.4 * (1.0 - 25.0 / 175.0)) &&
              strcmp(fb, "too low, unused 7 25") == 0,
          "150: %s", fb);
    CHECK(test_near(score_text(&p, "3", fb), 0.1 + 0.4 * (3.0 / 175.0)), "a single number is valid");
    CHECK(test_near(score_text(&p, "50*7", fb), 0.1 + 0.4 * 0.0), "350 is 175 away: 0.1");
    CHECK(test_near(score_text(&p, "3*7*25*50", fb), 0.1) && strcmp(fb, "too high, all used") == 0,
          "far away: %s", fb);
    CHECK(test_near(score_text(&p, "3-50", fb), 0.1) && strcmp(fb, "too low, unused 7 25") == 0,
          "negative values are valid, here 222 away: %s", fb);
    CHECK(score_text(&p, "50/3", fb) == 0.05f && strcmp(fb, "inexact division") == 0, "fb %s", fb);
    CHECK(score_text(&p, "25*8", fb) == 0.05f && strcmp(fb, "numbers not given, unused 3 7 50") == 0, "8 not given: %s", fb);
    CHECK(score_text(&p, "1234567890*7", fb) == 0.05f, "a too long number is not given");
    CHECK(score_text(&p, "25*7=", fb) == 0.0f && strcmp(fb, "malformed") == 0, "trailing '='");
    CHECK(score_text(&p, "", fb) == 0.0f, "empty");
    CHECK(score_text(&p, "  ", fb) == 0.0f, "blank");
    CHECK(score_text(&p, "abc", fb) == 0.0f, "letters");
    CHECK(score_text(&p, "(25*7", fb) == 0.0f, "unclosed parenthesis");
    CHECK(score_text(&p, "25*7)", fb) == 0.0f, "unopened parenthesis");
    CHECK(score_text(&p, "25**7", fb) == 0.0f, "double operator");
    CHECK(score_text(&p, "-25+200", fb) == 0.0f, "no unary minus");
    CHECK(score_text(&p, "25 7", fb) == 0.0f, "two numbers without an operator");
    CHECK(score_text(&p, "()", fb) == 0.0f, "empty parentheses");
    CHECK(score_text(&p, "(50/25)*", fb) == 0.0f, "dangling operator");
    CHECK(countdown_score(&p, "25*7\0", 5, fb, sizeof fb) == 0.0f, "embedded NUL byte");
    CHECK(countdown_score(&p, "25*7+3", 4, fb, sizeof fb) == 1.0f, "only len bytes are read");
    CHECK(countdown_score(&p, "25*7", 4, fb, 5) == -1.0f && fb[0] == 0, "feedback too small");
    CHECK(countdown_score(&p, "25*7", 4, NULL, 0) == 1.0f, "feedback optional");

    countdown_problem twins = {.n = 3, .numbers = {5, 5, 10}, .target = 20};
    CHECK(score_text(&twins, "5+5+10", fb) == 1.0f, "a repeated number may be used as often as given");
    CHECK(score_text(&twins, "10/(5-5)", fb) == 0.05f && strcmp(fb, "inexact division") == 0,
          "division by zero: %s", fb);
    CHECK(score_text(&twins, "5+5+5", fb) == 0.05f, "three fives are not given");

    /* nesting: 32 levels parse, 33 are malformed */
    char deep[128];
    int k = 0;
    for (int i = 0; i < 32; i++) deep[k++] = '(';
    k += sprintf(deep + k, "25*7");
    for (int i = 0; i < 32; i++) deep[k++] = ')';
    deep[k] = 0;
    CHECK(score_text(&p, deep, fb) == 1.0f, "32 nested parentheses");
    memmove(deep + 1, deep, (size_t)k + 1);
    deep[0] = '(';
    strcat(deep, ")");
    CHECK(score_text(&p, deep, fb) == 0.0f, "33 nested parentheses are too deep");
}

static void test_parser(void) {
    expr_result e;
    expr_parse("2*3+4*5", 7, &e);
    CHECK(e.status == EXPR_OK && e.value == 26 && e.n_numbers == 4, "precedence: %lld",
          (long long)e.value);
    expr_parse("20-5-3", 6, &e);
    CHECK(e.status == EXPR_OK && e.value == 12, "left associative: %lld", (long long)e.value);
    expr_parse("48/4/2", 6, &e);
    CHECK(e.status == EXPR_OK && e.value == 6, "left associative division: %lld", (long long)e.value);
    expr_parse("7/2*2", 5, &e);
    CHECK(e.status == EXPR_BAD_DIVISION, "7/2 is inexact even if *2 would repair it");
    expr_parse("999999999*999999999*999999999", 29, &e);
    CHECK(e.status == EXPR_OVERFLOW, "int64 overflow is reported: %d", e.status);
    expr_parse("1/0+", 4, &e);
    CHECK(e.status == EXPR_SYNTAX, "a syntax error outranks a bad division");
    expr_parse("1+2+3+4+5+6+7+8+9+10", 20, &e);
    CHECK(e.status == EXPR_OK && e.value == 55 && e.n_numbers == 10 && e.numbers[7] == 8,
          "counts past EXPR_MAX_NUMBERS: %d", e.n_numbers);
}

/* ---- an independent solver: combine any two values with + - * or exact /, recursively ---- */
static int solvable(const long long *vals, int n, long long target) {
    for (int i = 0; i < n; i++)
        if (vals[i] == target) return 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            long long rest[4];
            int m = 0;
            for (int k = 0; k < n; k++)
                if (k != i && k != j) rest[m++] = vals[k];
            long long a = vals[i], b = vals[j];
            long long cand[4] = {a + b, a - b, a * b, 0};
            int nc = 3;
            if (b != 0 && a % b == 0) cand[nc++] = a / b;
            for (int c = 0; c < nc; c++) {
                rest[m] = cand[c];
                if (solvable(rest, m + 1, target)) return 1;
            }
        }
    return 0;
}

static void test_generated_instances(void) {
    const int settings[][3] = {{2, 10, 200}, {3, 25, 999}, {4, 100, 999}, {4, 10, 9999}, {3, 2, 200}};
    const int per_setting = 2000; /* 10k draws in all */
    task_rng seeds = task_rng_seeded(2024);
    for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++) {
        int n = settings[s][0], max = settings[s][1], tmax = settings[s][2];
        int unsolved = 0, bad_target = 0, bad_numbers = 0, teacher_miss = 0, used_all = 0;
        for (int i = 0; i < per_setting; i++) {
            task_instance in = {.domain = TASK_DOMAIN_COUNTDOWN, .seed = task_rng_next(&seeds),
                                .knobs = {n, max, tmax}};
            countdown_problem p;
            if (countdown_generate(&in, &p)) {
                CHECK(0, "generation failed");
                return;
            }
            long long vals[4];
            for (int k = 0; k < n; k++) {
                vals[k] = p.numbers[k];
                if (p.numbers[k] < 1 || p.numbers[k] > max || (k && p.numbers[k] < p.numbers[k - 1]))
                    bad_numbers++;
                if (p.numbers[k] == p.target) bad_target++;
            }
            if (p.n != n || p.target < 1 || p.target > tmax) bad_target++;
            if (!solvable(vals, n, p.target)) unsolved++;
            char ans[TASK_ANSWER_CAP];
            task_rng r = task_rng_seeded((uint64_t)i);
            int len = task_countdown.teacher_answer(&in, &r, 1.0f, ans, sizeof ans);
            if (len <= 0 || task_countdown.score(&in, ans, (size_t)len, NULL, 0) != 1.0f) teacher_miss++;
            expr_result e;
            expr_parse(ans, (size_t)len, &e);
            used_all += e.n_numbers == n;
        }
        CHECK(unsolved == 0, "n=%d max=%d: %d of %d instances have no solution", n, max, unsolved,
              per_setting);
        CHECK(bad_target == 0, "%d targets out of range or equal to a number", bad_target);
        CHECK(bad_numbers == 0, "%d numbers out of range or unsorted", bad_numbers);
        CHECK(teacher_miss == 0, "%d correct teacher answers did not score 1", teacher_miss);
        CHECK(n == 2 ? used_all == per_setting : used_all > 0 && used_all < per_setting,
              "n=%d: solutions use all numbers in %d of %d", n, used_all, per_setting);
    }
}

static void test_determinism_and_teacher(void) {
    task_instance in = {.domain = TASK_DOMAIN_COUNTDOWN, .seed = 77, .knobs = {4, 50, 999}};
    char a[TASK_REQUEST_CAP], b[TASK_REQUEST_CAP];
    CHECK(task_countdown.render_request(&in, a, sizeof a) > 0, "render");
    task_countdown.render_request(&in, b, sizeof b);
    CHECK(strcmp(a, b) == 0 && strncmp(a, "nums ", 5) == 0 && strstr(a, " target "), "request %s", a);
    CHECK(task_countdown.render_request(&in, a, 10) == TASK_ERR_FIT, "10 bytes are too few");
    task_instance bad = in;
    bad.knobs[0] = 5;
    CHECK(task_countdown.render_request(&bad, a, sizeof a) == TASK_ERR_ARG, "n=5 out of range");
    bad = in;
    bad.knobs[2] = 100;
    CHECK(task_countdown.score(&bad, "1", 1, NULL, 0) == -1.0f, "target_max=100 out of range");

    task_rng r = task_rng_seeded(5);
    const int N = 3000;
    int wrong_valid = 0, right_default = 0;
    task_instance in3 = {.domain = TASK_DOMAIN_COUNTDOWN, .knobs = {3, 25, 999}};
    float p_default = task_countdown.teacher_p_correct(&in3);
    CHECK(fabsf(p_default - 0.7f) < 1e-6f, "n=3 default accuracy %f", p_default);
    for (int i = 0; i < N; i++) {
        in3.seed = (uint64_t)i * 1000003;
        char ans[TASK_ANSWER_CAP], fb[TASK_FEEDBACK_CAP];
        int len = task_countdown.teacher_answer(&in3, &r, 0.0f, ans, sizeof ans);
        float s = task_countdown.score(&in3, ans, (size_t)len, fb, sizeof fb);
        wrong_valid += s >= 0.1f && s < 1.0f && strncmp(fb, "too ", 4) == 0;
        len = task_countdown.teacher_answer(&in3, &r, -1.0f, ans, sizeof ans);
        right_default += task_countdown.score(&in3, ans, (size_t)len, NULL, 0) == 1.0f;
    }
    CHECK(wrong_valid == N, "p_correct=0: %d of %d were valid wrong equations", wrong_valid, N);
    double rate = (double)right_default / N;
    CHECK(fabs(rate - p_default) < 0.04, "default accuracy %.3f, expected %.3f", rate, p_default);
}

static void improve_case(const countdown_problem *p, const char *prev, const char *want) {
    task_rng r = task_rng_seeded(1);
    char out[TASK_ANSWER_CAP];
    int n = countdown_improve(p, prev, strlen(prev), &r, 1.0f, out, sizeof out);
    CHECK(n == (int)strlen(want) && strcmp(out, want) == 0, "improve %s: %s, expected %s", prev, out, want);
}

/* The one-edit teacher: hand-worked best edits of each kind, then over random instances and
 * attempts it never scores below the attempt, and beats every valid wrong one. */
static void test_improve(void) {
    countdown_problem p = {.n = 4, .numbers = {3, 7, 25, 50}, .target = 175};
    improve_case(&p, "25*7", "25*7");       /* right: kept */
    improve_case(&p, "25*3", "25*7");       /* a number replaced */
    improve_case(&p, "25*8", "25*7");       /* 8 is not given: replaced */
    improve_case(&p, "25*7+3", "25*7");     /* a number dropped with its operator */
    improve_case(&p, "3*50", "3*50+25");    /* a given number joined */
    improve_case(&p, "50-25", "(50-25)*7"); /* joined by *, parenthesised */
    improve_case(&p, "25+7", "25*7");       /* an operator replaced */

    task_rng r = task_rng_seeded(9);
    task_instance in = {.domain = TASK_DOMAIN_COUNTDOWN, .knobs = {3, 25, 999}};
    int valid_wrong = 0, better = 0, never_worse = 1;
    const int N = 2000;
    for (int i = 0; i < N; i++) {
        in.seed = (uint64_t)i * 7919 + 1;
        countdown_problem q;
        CHECK(countdown_generate(&in, &q) == 0, "generate");
        char prev[TASK_ANSWER_CAP], out[TASK_ANSWER_CAP];
        int len = task_countdown.teacher_answer(&in, &r, 0.0f, prev, sizeof prev - 1);
        if (i % 4 == 0) { /* malformed */
            prev[len++] = '+';
            prev[len] = 0;
        }
        float q0 = countdown_score(&q, prev, (size_t)len, NULL, 0);
        int n = countdown_improve(&q, prev, (size_t)len, &r, (float)(i % 3) / 2.0f, out, sizeof out);
        CHECK(n > 0, "improve returned %d", n);
        float q1 = countdown_score(&q, out, (size_t)n, NULL, 0);
        never_worse &= q1 >= q0;
        valid_wrong += q0 >= 0.1f && q0 < 1.0f;
        better += q0 >= 0.1f && q0 < 1.0f && q1 > q0;
    }
    CHECK(never_worse, "an improvement scored below its attempt");
    CHECK(valid_wrong > N / 2 && better == valid_wrong, "%d of %d valid wrong attempts improved", better,
          valid_wrong);
}

int main(void) {
    test_hand_cases();
    test_parser();
    test_generated_instances();
    test_determinism_and_teacher();
    test_improve();
    return test_finish("test_tasks_countdown");
}
