/* Prompt rendering (templates, round trip, overflow, argument errors) and supervised demos
 * (layout, targets, mode mix, determinism, independence of shown attempt and target). */
#include <string.h>

#include "tasks/knapsack.h"
#include "tasks/task.h"
#include "test_util.h"
#include "model/tokenizer.h"

/* Expected rendering built by hand from the template, compared token by token. */
static int expect_tokens(const int *got, int n, const int *want, int m) {
    if (n != m) return 0;
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

static int append_text(int *t, int k, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) t[k++] = (unsigned char)s[i];
    return k;
}

static void test_templates(void) {
    const task_domain *d = task_domain_find("countdown");
    int32_t knobs[TASK_MAX_KNOBS];
    task_knobs_default(d, knobs);
    task_instance in;
    char why[160], req[TASK_REQUEST_CAP];
    CHECK(task_draw(d, knobs, TASK_SPLIT_TRAIN, 1, 0, &in, why, sizeof why) == 0, "%s", why);
    int req_len = d->render_request(&in, req, sizeof req);
    int got[512], want[512];

    int n = task_render_prompt(d, &in, TASK_PROMPT_BASE, NULL, 0, NULL, 0, got, 512);
    int m = 0;
    want[m++] = TOK_BOS;
    want[m++] = TOK_REQUEST;
    m = append_text(want, m, req, (size_t)req_len);
    want[m++] = TOK_ANSWER;
    CHECK(expect_tokens(got, n, want, m), "base prompt (%d tokens, want %d)", n, m);
    char text[1024];
    tok_render(got, n, text, sizeof text);
    char expected[1024];
    snprintf(expected, sizeof expected, "<bos><request>%s<answer>", req);
    CHECK(strcmp(text, expected) == 0, "renders as %s", text);
    char bytes[512];
    CHECK(tok_decode_bytes(got + 2, n - 2, bytes, sizeof bytes) == req_len &&
              strcmp(bytes, req) == 0,
          "request bytes decode back: %s", bytes);

    /* an attempt with a NUL and a high byte survives unchanged */
    const char attempt[] = {'2', '5', 0, '*', (char)0xFF, '7'};
    const char *fb = "value 42";
    n = task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, attempt, sizeof attempt, fb, strlen(fb), got,
                           512);
    m = 0;
    want[m++] = TOK_BOS;
    want[m++] = TOK_REQUEST;
    m = append_text(want, m, req, (size_t)req_len);
    want[m++] = TOK_RESPONSE;
    m = append_text(want, m, attempt, sizeof attempt);
    want[m++] = TOK_FEEDBACK;
    m = append_text(want, m, fb, strlen(fb));
    want[m++] = TOK_IMPROVE;
    want[m++] = TOK_ANSWER;
    CHECK(expect_tokens(got, n, want, m), "improve prompt with feedback (%d tokens, want %d)", n, m);

    n = task_render_prompt(d, &in, TASK_PROMPT_DIVERGE, "25*7", 4, NULL, 0, got, 512);
    tok_render(got, n, text, sizeof text);
    snprintf(expected, sizeof expected, "<bos><request>%s<response>25*7<diverge><answer>", req);
    CHECK(strcmp(text, expected) == 0, "diverge prompt renders as %s", text);
    n = task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, "", 0, NULL, 0, got, 512);
    tok_render(got, n, text, sizeof text);
    snprintf(expected, sizeof expected, "<bos><request>%s<response><improve><answer>", req);
    CHECK(strcmp(text, expected) == 0, "an empty attempt is allowed: %s", text);

    /* overflow: exactly enough room works, one less fails and writes nothing past cap */
    int full = task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, "25*7", 4, fb, strlen(fb), got, 512);
    for (int i = 0; i < 512; i++) got[i] = -7;
    CHECK(task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, "25*7", 4, fb, strlen(fb), got, full) == full,
          "exact fit");
    int short_ok = 1, clean = 1;
    for (int c = 0; c < full; c++) { /* every cap short of the length fails, touching nothing past it */
        for (int i = 0; i < 512; i++) got[i] = -7;
        short_ok &= task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, "25*7", 4, fb, strlen(fb), got,
                                       c) == TASK_ERR_FIT;
        for (int i = c; i < 512; i++) clean &= got[i] == -7;
    }
    CHECK(short_ok, "every cap below %d tokens is TASK_ERR_FIT", full);
    CHECK(clean, "nothing written past cap");
    CHECK(task_render_prompt(d, &in, TASK_PROMPT_BASE, NULL, 0, NULL, 0, got, 0) == TASK_ERR_FIT,
          "cap 0");
    char long_attempt[600];
    memset(long_attempt, '1', sizeof long_attempt);
    CHECK(task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, long_attempt, sizeof long_attempt, NULL, 0,
                             got, 512) == TASK_ERR_FIT,
          "a 600-byte attempt does not fit in 512");

    /* argument errors */
    CHECK(task_render_prompt(d, &in, TASK_PROMPT_BASE, "1", 1, NULL, 0, got, 512) == TASK_ERR_ARG,
          "base prompt with an attempt");
    CHECK(task_render_prompt(d, &in, TASK_PROMPT_BASE, NULL, 0, "x", 1, got, 512) == TASK_ERR_ARG,
          "base prompt with feedback");
    CHECK(task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, NULL, 0, NULL, 0, got, 512) == TASK_ERR_ARG,
          "improve prompt without an attempt");
    CHECK(task_render_prompt(d, &in, 3, "1", 1, NULL, 0, got, 512) == TASK_ERR_ARG, "unknown mode");
    CHECK(task_render_prompt(task_domain_find("arith"), &in, TASK_PROMPT_BASE, NULL, 0, NULL, 0, got,
                             512) == TASK_ERR_ARG,
          "another domain's instance");
    task_instance bad = in;
    bad.knobs[0] = 17;
    CHECK(task_render_prompt(d, &bad, TASK_PROMPT_BASE, NULL, 0, NULL, 0, got, 512) == TASK_ERR_ARG,
          "invalid knobs");
}

/* Finds the ANSWER token; returns its position or -1. */
static int answer_position(const int *tokens, int n) {
    for (int i = 0; i < n; i++)
        if (tokens[i] == TOK_ANSWER) return i;
    return -1;
}

static int find_token(const int *tokens, int n, int id) {
    for (int i = 0; i < n; i++)
        if (tokens[i] == id) return i;
    return -1;
}

/* The domain's default knobs; a multi-turn domain at one turn ("turns=1"), where its demos are
 * the single-turn contract that these tests check (test_tasks_ledger checks the multi-turn ones). */
static void single_turn_knobs(const task_domain *d, int32_t knobs[TASK_MAX_KNOBS]) {
    task_knobs_default(d, knobs);
    char why[160];
    if (d->episode) CHECK(task_knobs_parse(d, "turns=1", knobs, why, sizeof why) == 0, "%s: %s", d->name, why);
}

static void test_demos(const task_domain *d) {
    int32_t knobs[TASK_MAX_KNOBS];
    single_turn_knobs(d, knobs);
    task_demo_options opt = {.p_improve = 0.3f, .p_diverge = 0.2f, .p_feedback = 0.5f, .p_correct = -1,
                             .targets = TASK_DEMO_FRESH, .p_shown_correct = -1};
    task_rng rng = task_rng_seeded(11);
    enum { CAP = 512 };
    int tokens[CAP], targets[CAP];
    const int N = 4000;
    int n_improve = 0, n_diverge = 0, n_feedback = 0, n_iter = 0, bad_layout = 0, bad_answer = 0;
    int same_as_shown = 0, correct = 0;
    for (int i = 0; i < N; i++) {
        task_instance in;
        char why[160];
        if (task_draw(d, knobs, TASK_SPLIT_TRAIN, 5, (uint64_t)i, &in, why, sizeof why)) {
            CHECK(0, "%s", why);
            return;
        }
        int len = task_make_demo(d, &in, &rng, &opt, tokens, targets, CAP);
        if (len < 0) {
            CHECK(0, "%s demo %d failed: %d", d->name, i, len);
            return;
        }
        int a = answer_position(tokens, len);
        int layout_ok = a > 2 && tokens[0] == TOK_BOS && tokens[1] == TOK_REQUEST && targets[len - 1] == TOK_EOS;
        for (int k = 0; k < a && layout_ok; k++) layout_ok = targets[k] == -1;
        for (int k = a; k < len - 1 && layout_ok; k++) layout_ok = targets[k] == tokens[k + 1];
        for (int k = a + 1; k < len && layout_ok; k++) layout_ok = tokens[k] >= 0 && tokens[k] < 256;
        bad_layout += !layout_ok;
        if (!layout_ok) continue;
        /* the answer, as the model must produce it, is a well-formed attempt */
        char answer[TASK_ANSWER_CAP];
        int alen = tok_decode_bytes(tokens + a + 1, len - a - 1, answer, sizeof answer);
        float s = d->score(&in, answer, (size_t)alen, NULL, 0);
        bad_answer += s < 0.0f;
        correct += s == 1.0f;

        int improve = find_token(tokens, a, TOK_IMPROVE), diverge = find_token(tokens, a, TOK_DIVERGE);
        int response = find_token(tokens, a, TOK_RESPONSE), fb = find_token(tokens, a, TOK_FEEDBACK);
        n_improve += improve >= 0;
        n_diverge += diverge >= 0;
        if (improve >= 0 || diverge >= 0) {
            n_iter++;
            n_feedback += fb >= 0;
            int end = fb >= 0 ? fb : (improve >= 0 ? improve : diverge);
            char shown[TASK_ANSWER_CAP];
            int slen = tok_decode_bytes(tokens + response + 1, end - response - 1, shown, sizeof shown);
            same_as_shown += slen == alen && memcmp(shown, answer, (size_t)alen) == 0;
            if (fb >= 0) { /* the feedback shown is the verifier's message for the shown attempt */
                char want_fb[TASK_FEEDBACK_CAP], got_fb[TASK_FEEDBACK_CAP + 8];
                d->score(&in, shown, (size_t)slen, want_fb, sizeof want_fb);
                int flen = tok_decode_bytes(tokens + fb + 1, (improve >= 0 ? improve : diverge) - fb - 1,
                                            got_fb, sizeof got_fb);
                bad_layout += flen != (int)strlen(want_fb) || strcmp(got_fb, want_fb) != 0;
            }
        } else {
            bad_layout += response >= 0 || fb >= 0;
        }
    }
    printf("%s demos: improve %d diverge %d feedback %d/%d, target equals shown %d/%d, correct %d/%d\n",
           d->name, n_improve, n_diverge, n_feedback, n_iter, same_as_shown, n_iter, correct, N);
    CHECK(bad_layout == 0, "%s: %d demos with a wrong layout", d->name, bad_layout);
    CHECK(bad_answer == 0, "%s: %d demo answers not scorable", d->name, bad_answer);
    CHECK(fabs(n_improve / (double)N - 0.3) < 0.03 && fabs(n_diverge / (double)N - 0.2) < 0.03,
          "%s mode mix %d %d", d->name, n_improve, n_diverge);
    CHECK(fabs(n_feedback / (double)n_iter - 0.5) < 0.05, "%s feedback share %d/%d", d->name,
          n_feedback, n_iter);
    /* independent draws: the target sometimes repeats the shown attempt (both right), not always */
    CHECK(same_as_shown > 0 && same_as_shown < n_iter, "%s: target equals shown attempt %d/%d",
          d->name, same_as_shown, n_iter);
}

static void test_demo_determinism_and_errors(void) {
    const task_domain *d = task_domain_find("knapsack");
    int32_t knobs[TASK_MAX_KNOBS];
    task_knobs_default(d, knobs);
    task_instance in;
    char why[160];
    task_draw(d, knobs, TASK_SPLIT_TRAIN, 3, 3, &in, why, sizeof why);
    task_demo_options opt = {.p_improve = 0.5f, .p_diverge = 0.5f, .p_feedback = 1.0f, .p_correct = 0.5f,
                             .p_shown_correct = -1};
    int t1[512], g1[512], t2[512], g2[512];
    int same = 1;
    task_rng r1 = task_rng_seeded(4), r2 = task_rng_seeded(4);
    for (int i = 0; i < 50; i++) {
        int n1 = task_make_demo(d, &in, &r1, &opt, t1, g1, 512);
        int n2 = task_make_demo(d, &in, &r2, &opt, t2, g2, 512);
        same &= n1 == n2 && n1 > 0 && memcmp(t1, t2, sizeof(int) * (size_t)n1) == 0 &&
                memcmp(g1, g2, sizeof(int) * (size_t)n1) == 0;
    }
    CHECK(same, "the same rng state gives the same demos");

    task_demo_options base = {.p_correct = 1.0f, .p_shown_correct = -1};
    task_rng r = task_rng_seeded(1);
    int n = task_make_demo(d, &in, &r, &base, t1, g1, 512);
    CHECK(n > 0, "base demo");
    r = task_rng_seeded(1);
    CHECK(task_make_demo(d, &in, &r, &base, t1, g1, n) == n, "exact fit");
    r = task_rng_seeded(1);
    CHECK(task_make_demo(d, &in, &r, &base, t1, g1, n - 1) == TASK_ERR_FIT, "one position short");
    task_demo_options bad = {.p_improve = 0.7f, .p_diverge = 0.7f};
    CHECK(task_make_demo(d, &in, &r, &bad, t1, g1, 512) == TASK_ERR_ARG, "probabilities sum over 1");
    bad = (task_demo_options){.p_feedback = -0.1f};
    CHECK(task_make_demo(d, &in, &r, &bad, t1, g1, 512) == TASK_ERR_ARG, "negative probability");
    bad = (task_demo_options){.p_correct = 1.5f};
    CHECK(task_make_demo(d, &in, &r, &bad, t1, g1, 512) == TASK_ERR_ARG, "p_correct above 1");
    CHECK(task_make_demo(task_domain_find("arith"), &in, &r, &base, t1, g1, 512) == TASK_ERR_ARG,
          "another domain's instance");
    bad = (task_demo_options){.targets = 2};
    CHECK(task_make_demo(d, &in, &r, &bad, t1, g1, 512) == TASK_ERR_ARG, "unknown targets");
}

/* targets = TASK_DEMO_IMPROVE: an improve demonstration keeps a right attempt byte for byte, and
 * improves a wrong one: never worse, strictly better where the domain has teacher_improve. */
static void test_improve_targets(const task_domain *d) {
    int32_t knobs[TASK_MAX_KNOBS];
    single_turn_knobs(d, knobs);
    task_demo_options opt = {.p_improve = 1.0f, .p_feedback = 0.5f, .p_correct = -1, .targets = TASK_DEMO_IMPROVE,
                             .p_shown_correct = 0.5f};
    task_rng rng = task_rng_seeded(23);
    enum { CAP = 512 };
    int tokens[CAP], targets[CAP];
    const int N = 2000;
    int shown_right = 0, kept = 0, fixed = 0, worse = 0, not_better = 0;
    for (int i = 0; i < N; i++) {
        task_instance in;
        char why[160], shown[TASK_ANSWER_CAP], answer[TASK_ANSWER_CAP];
        if (task_draw(d, knobs, TASK_SPLIT_TRAIN, 7, (uint64_t)i, &in, why, sizeof why)) {
            CHECK(0, "%s", why);
            return;
        }
        int len = task_make_demo(d, &in, &rng, &opt, tokens, targets, CAP);
        if (len < 0) {
            CHECK(0, "%s improve demo %d failed: %d", d->name, i, len);
            return;
        }
        int a = answer_position(tokens, len), response = find_token(tokens, a, TOK_RESPONSE);
        int fb = find_token(tokens, a, TOK_FEEDBACK), improve = find_token(tokens, a, TOK_IMPROVE);
        int slen = tok_decode_bytes(tokens + response + 1, (fb >= 0 ? fb : improve) - response - 1, shown, sizeof shown);
        int alen = tok_decode_bytes(tokens + a + 1, len - a - 1, answer, sizeof answer);
        float q0 = d->score(&in, shown, (size_t)slen, NULL, 0), q = d->score(&in, answer, (size_t)alen, NULL, 0);
        if (q0 >= 1.0f) {
            shown_right++;
            kept += slen == alen && memcmp(shown, answer, (size_t)alen) == 0;
        } else {
            fixed += q >= 1.0f;
            worse += q < q0;
            not_better += q <= q0;
        }
    }
    int wrong = N - shown_right;
    printf("%s improve demos: shown right %d/%d (kept %d), wrong fixed %d/%d, worse %d, not better %d\n", d->name,
           shown_right, N, kept, fixed, wrong, worse, not_better);
    CHECK(fabs(shown_right / (double)N - 0.5) < 0.05, "%s: shown right %d/%d, asked for half", d->name, shown_right, N);
    CHECK(kept == shown_right, "%s: %d right attempts not kept", d->name, shown_right - kept);
    CHECK(fixed > wrong / 4, "%s: only %d of %d wrong attempts fixed", d->name, fixed, wrong);
    CHECK(worse == 0, "%s: %d improve targets worse than the attempt shown", d->name, worse);
    if (d->teacher_improve) CHECK(not_better == 0, "%s: %d improvements no better", d->name, not_better);
}

/* knapsack's teacher_improve on hand-made attempts: the paths the teacher's own attempts never take
 * (over capacity, malformed, a local optimum). Capacity 10; the best is items 1 and 3 (value 90). */
static void test_knapsack_improve_paths(void) {
    const task_domain *d = task_domain_find("knapsack");
    int32_t knobs[TASK_MAX_KNOBS];
    task_knobs_default(d, knobs);
    knobs[KNAPSACK_KNOB_N] = 4;
    task_instance in;
    char why[160], out[TASK_ANSWER_CAP];
    CHECK(task_draw(d, knobs, TASK_SPLIT_TRAIN, 3, 0, &in, why, sizeof why) == 0, "%s", why);
    knapsack_problem p;
    knapsack_generate(&in, &p);
    unsigned char best[KNAPSACK_MAX_ITEMS];
    int optimum = knapsack_optimum(&p, best);
    const char *attempts[] = {"0 1 2 3", "", "3", "x y", "0 0"};
    for (size_t a = 0; a < sizeof attempts / sizeof attempts[0]; a++) {
        task_rng r = task_rng_seeded(5 + a);
        const char *prev = attempts[a];
        int n = d->teacher_improve(&in, prev, strlen(prev), &r, -1.0f, out, sizeof out);
        float q0 = d->score(&in, prev, strlen(prev), NULL, 0), q = n < 0 ? -1.0f : d->score(&in, out, (size_t)n, NULL, 0);
        CHECK(n >= 0 && d->well_formed(&in, out, (size_t)n) == 1, "improve of '%s' -> '%s' (%d)", prev, out, n);
        /* every attempt here is below the optimum: the improvement is strictly better */
        CHECK(q > q0, "improve of '%s' (%.3f) -> '%s' (%.3f) is not better", prev, q0, out, q);
    }
    /* At a local optimum (no item fits, no swap gains) the teacher gives an optimal selection. */
    char opt[TASK_ANSWER_CAP];
    int len = 0;
    for (int i = 0; i < p.n; i++)
        if (best[i]) len += snprintf(opt + len, sizeof opt - (size_t)len, len ? " %d" : "%d", i);
    task_rng r = task_rng_seeded(9);
    int n = d->teacher_improve(&in, opt, (size_t)len, &r, -1.0f, out, sizeof out);
    CHECK(n >= 0 && d->score(&in, out, (size_t)n, NULL, 0) == 1.0f, "the optimum (value %d) stays optimal: '%s'",
          optimum, out);
    task_demo_options bad = {.p_shown_correct = 1.5f};
    CHECK(task_make_demo(d, &in, &r, &bad, (int[512]){0}, (int[512]){0}, 512) == TASK_ERR_ARG,
          "p_shown_correct above 1");
}

int main(void) {
    test_templates();
    for (int i = 0; i < task_domain_count(); i++) test_demos(task_domain_at(i));
    test_demo_determinism_and_errors();
    for (int i = 0; i < task_domain_count(); i++) test_improve_targets(task_domain_at(i));
    test_knapsack_improve_paths();
    return test_finish("test_tasks_prompt");
}
