/* knapsack: hand-worked verifier cases, the DP against brute force, generator constraints,
 * determinism and the teacher. */
#include <string.h>

#include "tasks/knapsack.h"
#include "test_util.h"

static float score_text(const knapsack_problem *p, const char *text, char *fb) {
    return knapsack_score(p, text, strlen(text), fb, TASK_FEEDBACK_CAP);
}

static void test_hand_cases(void) {
    /* capacity 10; the best pair is items 1 and 3 (weight 7, value 90) */
    knapsack_problem p = {.n = 4, .weight = {5, 4, 6, 3}, .value = {10, 40, 30, 50}, .capacity = 10};
    char fb[TASK_FEEDBACK_CAP];
    CHECK(knapsack_optimum(&p, NULL) == 90, "optimum %d", knapsack_optimum(&p, NULL));
    CHECK(score_text(&p, "1 3", fb) == 1.0f && strcmp(fb, "weight 7/10 value 90 optimal") == 0, "fb %s", fb);
    CHECK(score_text(&p, "3 1", fb) == 1.0f, "order does not matter");
    CHECK(score_text(&p, " 1\t3\n", fb) == 1.0f, "any whitespace separates");
    CHECK(score_text(&p, "01 3", fb) == 1.0f, "leading zeros");
    CHECK(test_near(score_text(&p, "0 1", fb), 50.0 / 90.0) && strcmp(fb, "weight 9/10 room 1 value 50/90") == 0,
          "suboptimal: %s", fb);
    CHECK(test_near(score_text(&p, "2", fb), 30.0 / 90.0), "one item");
    CHECK(score_text(&p, "", fb) == 0.0f && strcmp(fb, "weight 0/10 room 10 value 0/90") == 0, "empty set: %s", fb);
    CHECK(score_text(&p, "0 1 2", fb) == 0.0f && strcmp(fb, "weight 15/10 over by 5") == 0,
          "over capacity: %s", fb);
    CHECK(score_text(&p, "1 1", fb) == 0.0f && strcmp(fb, "malformed") == 0, "repeated index");
    CHECK(score_text(&p, "4", fb) == 0.0f, "index out of range");
    CHECK(score_text(&p, "1,3", fb) == 0.0f, "commas are not separators");
    CHECK(score_text(&p, "-1", fb) == 0.0f, "negative index");
    CHECK(score_text(&p, "1 3x", fb) == 0.0f, "trailing garbage");
    CHECK(score_text(&p, "0001", fb) == 0.0f, "more than 3 digits");
    CHECK(knapsack_score(&p, "1 3\0", 4, fb, sizeof fb) == 0.0f, "embedded NUL byte");
    CHECK(knapsack_score(&p, "1 30", 3, fb, sizeof fb) == 1.0f, "only len bytes are read");
    CHECK(knapsack_score(&p, "1 3", 3, fb, 8) == -1.0f && fb[0] == 0, "feedback too small");
    CHECK(knapsack_score(&p, "1 3", 3, NULL, 0) == 1.0f, "feedback optional");

    unsigned char take[KNAPSACK_MAX_ITEMS];
    CHECK(knapsack_optimum(&p, take) == 90 && !take[0] && take[1] && !take[2] && take[3],
          "optimal selection %d%d%d%d", take[0], take[1], take[2], take[3]);
    knapsack_problem bad = p;
    bad.weight[2] = 0;
    CHECK(knapsack_optimum(&bad, NULL) == -1, "zero weight rejected");
    bad = p;
    bad.capacity = KNAPSACK_MAX_CAPACITY + 1;
    CHECK(knapsack_optimum(&bad, NULL) == -1, "capacity beyond the table rejected");
    CHECK(knapsack_score(&bad, "1", 1, NULL, 0) == -1.0f, "and not scored");
}

static int brute_force(const knapsack_problem *p) {
    int best = 0;
    for (unsigned mask = 0; mask < (1u << p->n); mask++) {
        int w = 0, v = 0;
        for (int i = 0; i < p->n; i++)
            if (mask >> i & 1) {
                w += p->weight[i];
                v += p->value[i];
            }
        if (w <= p->capacity && v > best) best = v;
    }
    return best;
}

static void test_dp_against_brute_force(void) {
    task_rng r = task_rng_seeded(31337);
    int mismatch = 0, bad_selection = 0;
    const int N = 3000;
    for (int t = 0; t < N; t++) {
        knapsack_problem p = {.n = (int)task_rng_range(&r, 0, 12)};
        int total = 0;
        for (int i = 0; i < p.n; i++) {
            p.weight[i] = (int)task_rng_range(&r, 1, 30);
            p.value[i] = (int)task_rng_range(&r, 1, 60);
            total += p.weight[i];
        }
        p.capacity = (int)task_rng_range(&r, 0, total + 5); /* includes 0 and >= total */
        unsigned char take[KNAPSACK_MAX_ITEMS];
        int opt = knapsack_optimum(&p, take);
        if (opt != brute_force(&p)) mismatch++;
        int w = 0, v = 0;
        for (int i = 0; i < p.n; i++)
            if (take[i]) {
                w += p.weight[i];
                v += p.value[i];
            }
        if (w > p.capacity || v != opt) bad_selection++;
    }
    CHECK(mismatch == 0, "%d of %d optima differ from brute force", mismatch, N);
    CHECK(bad_selection == 0, "%d selections infeasible or not optimal", bad_selection);
}

static void test_generated_instances(void) {
    const int settings[][4] = {{2, 10, 20, 50}, {6, 10, 20, 50}, {12, 50, 99, 10}, {20, 50, 99, 90},
                               {20, 2, 2, 30}};
    for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++) {
        int bad = 0, teacher_miss = 0, wrong_bad = 0, too_easy = 0;
        for (uint64_t seed = 0; seed < 1000; seed++) {
            task_instance in = {.domain = TASK_DOMAIN_KNAPSACK, .seed = seed * 104729 + s,
                                .knobs = {settings[s][0], settings[s][1], settings[s][2], settings[s][3]}};
            knapsack_problem p;
            if (knapsack_generate(&in, &p)) {
                CHECK(0, "generation failed");
                return;
            }
            int total = 0, total_value = 0, lightest = 1 << 30;
            for (int i = 0; i < p.n; i++) {
                total += p.weight[i];
                total_value += p.value[i];
                if (p.weight[i] < lightest) lightest = p.weight[i];
                if (p.weight[i] < 1 || p.weight[i] > settings[s][1] || p.value[i] < 1 ||
                    p.value[i] > settings[s][2])
                    bad++;
            }
            if (p.n != settings[s][0] || p.capacity < lightest || p.capacity >= total) bad++;
            if (p.n <= 12 && knapsack_optimum(&p, NULL) != brute_force(&p)) bad++;
            char ans[TASK_ANSWER_CAP], fb[TASK_FEEDBACK_CAP];
            task_rng r = task_rng_seeded(seed);
            int len = task_knapsack.teacher_answer(&in, &r, 1.0f, ans, sizeof ans);
            if (len < 0 || task_knapsack.score(&in, ans, (size_t)len, NULL, 0) != 1.0f) teacher_miss++;
            len = task_knapsack.teacher_answer(&in, &r, 0.0f, ans, sizeof ans);
            float sc = task_knapsack.score(&in, ans, (size_t)len, fb, sizeof fb);
            if (!(sc >= 0.0f && sc < 1.0f) || strstr(fb, "over") || strcmp(fb, "malformed") == 0)
                wrong_bad++;
            too_easy += knapsack_optimum(&p, NULL) == total_value;
        }
        CHECK(bad == 0, "setting %zu: %d generated problems break their constraints", s, bad);
        CHECK(teacher_miss == 0, "setting %zu: %d optimal teacher answers scored below 1", s,
              teacher_miss);
        CHECK(wrong_bad == 0, "setting %zu: %d wrong teacher answers not feasible and suboptimal", s,
              wrong_bad);
        CHECK(too_easy == 0, "setting %zu: %d problems where everything fits", s, too_easy);
    }
}

static void test_determinism_and_teacher(void) {
    task_instance in = {.domain = TASK_DOMAIN_KNAPSACK, .seed = 5, .knobs = {8, 20, 30, 40}};
    char a[TASK_REQUEST_CAP], b[TASK_REQUEST_CAP];
    int n = task_knapsack.render_request(&in, a, sizeof a);
    task_knapsack.render_request(&in, b, sizeof b);
    CHECK(n > 0 && strcmp(a, b) == 0 && strncmp(a, "cap ", 4) == 0 && strstr(a, " items "),
          "request %s", a);
    int colons = 0;
    for (const char *c = a; *c; c++) colons += *c == ':';
    CHECK(colons == 8, "8 items rendered: %s", a);
    CHECK(task_knapsack.render_request(&in, a, (size_t)n) == TASK_ERR_FIT, "no room for the NUL");
    CHECK(task_knapsack.render_request(&in, a, (size_t)n + 1) == n, "exactly enough room");
    task_instance big = {.domain = TASK_DOMAIN_KNAPSACK, .seed = 5, .knobs = {20, 50, 99, 90}};
    CHECK(task_knapsack.render_request(&big, a, sizeof a) < TASK_REQUEST_CAP, "largest fits");
    task_instance bad = in;
    bad.knobs[3] = 95;
    CHECK(task_knapsack.render_request(&bad, a, sizeof a) == TASK_ERR_ARG, "cap_pct 95 out of range");

    task_rng r = task_rng_seeded(8);
    const int N = 3000;
    int right = 0;
    float p_default = task_knapsack.teacher_p_correct(&in);
    CHECK(fabsf(p_default - (0.9f - 0.04f * 6)) < 1e-6f, "n=8 default accuracy %f", p_default);
    for (int i = 0; i < N; i++) {
        in.seed = (uint64_t)i;
        char ans[TASK_ANSWER_CAP];
        int len = task_knapsack.teacher_answer(&in, &r, -1.0f, ans, sizeof ans);
        right += task_knapsack.score(&in, ans, (size_t)len, NULL, 0) == 1.0f;
    }
    double rate = (double)right / N;
    CHECK(fabs(rate - p_default) < 0.04, "default accuracy %.3f, expected %.3f", rate, p_default);
}

int main(void) {
    test_hand_cases();
    test_dp_against_brute_force();
    test_generated_instances();
    test_determinism_and_teacher();
    return test_finish("test_tasks_knapsack");
}
