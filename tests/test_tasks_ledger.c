/* ledger: hand-worked environment semantics (each tool, every error, malformed text, several calls,
 * a failing call in the middle), hand-worked reward and feedback rules, every generated episode
 * replayed against its ground truth over all knob levels, the teacher's accuracy and slips,
 * teacher_improve (keeps right, strictly improves wrong, composes), determinism and the
 * single-turn view. */
#include <math.h>
#include <string.h>

#include "model/tokenizer.h"
#include "tasks/ledger.h"
#include "test_util.h"

static ledger_state state3(int a, int b, int c) {
    ledger_state s = {.n = 3, .balance = {a, b, c}};
    return s;
}

/* Executes text on a copy of *s; *out receives the state, res the results. Returns ledger_execute's code. */
static int exec(const ledger_state *s, const char *text, ledger_state *out, char *res) {
    *out = *s;
    return ledger_execute(out, text, strlen(text), res, LEDGER_RESULT_CAP);
}

static int balances(const ledger_state *s, int a, int b, int c) {
    return s->n == 3 && s->balance[0] == a && s->balance[1] == b && s->balance[2] == c;
}

static void test_tools_and_errors(void) {
    ledger_state s0 = state3(5, 12, 0), s;
    char res[LEDGER_RESULT_CAP];
    CHECK(exec(&s0, "add a 5", &s, res) == 0 && balances(&s, 10, 12, 0) && !strcmp(res, "a=10"), "add: %s", res);
    CHECK(exec(&s0, "sub b 3", &s, res) == 0 && balances(&s, 5, 9, 0) && !strcmp(res, "b=9"), "sub: %s", res);
    CHECK(exec(&s0, "mov a c 4", &s, res) == 0 && balances(&s, 1, 12, 4) && !strcmp(res, "a=1 c=4"), "mov: %s", res);
    CHECK(exec(&s0, "get b", &s, res) == 0 && balances(&s, 5, 12, 0) && !strcmp(res, "b=12"), "get: %s", res);
    CHECK(exec(&s0, "sub a 5", &s, res) == 0 && balances(&s, 0, 12, 0), "sub to zero");
    CHECK(exec(&s0, "mov b a 12", &s, res) == 0 && balances(&s, 17, 0, 0) && !strcmp(res, "b=0 a=17"), "%s", res);
    /* failing calls change nothing */
    CHECK(exec(&s0, "sub a 6", &s, res) == 1 && balances(&s, 5, 12, 0) && !strcmp(res, "error: insufficient funds in a"),
          "insufficient: %s", res);
    CHECK(exec(&s0, "mov c a 1", &s, res) == 1 && balances(&s, 5, 12, 0) && !strcmp(res, "error: insufficient funds in c"),
          "%s", res);
    CHECK(exec(&s0, "add d 1", &s, res) == 1 && !strcmp(res, "error: unknown account d"), "unknown: %s", res);
    CHECK(exec(&s0, "get z", &s, res) == 1 && !strcmp(res, "error: unknown account z"), "%s", res);
    CHECK(exec(&s0, "mov a e 1", &s, res) == 1 && !strcmp(res, "error: unknown account e") && balances(&s, 5, 12, 0),
          "%s", res);
    CHECK(exec(&s0, "mov e a 1", &s, res) == 1 && !strcmp(res, "error: unknown account e"), "%s", res);
    CHECK(exec(&s0, "mov a a 1", &s, res) == 1 && !strcmp(res, "error: same account a"), "X == Y: %s", res);
    ledger_state rich = state3(LEDGER_MAX_BALANCE - 5, 999, 0);
    CHECK(exec(&rich, "add a 6", &s, res) == 1 && !strcmp(res, "error: balance limit on a") &&
              s.balance[0] == LEDGER_MAX_BALANCE - 5, "%s", res);
    CHECK(exec(&rich, "add a 5", &s, res) == 0 && s.balance[0] == LEDGER_MAX_BALANCE, "up to the limit");
    CHECK(exec(&rich, "mov b a 999", &s, res) == 1 && !strcmp(res, "error: balance limit on a"), "%s", res);

    /* several calls; a failing call in the middle; order */
    CHECK(exec(&s0, "add a 1; sub b 2; get c", &s, res) == 0 && balances(&s, 6, 10, 0) && !strcmp(res, "a=6; b=10; c=0"),
          "%s", res);
    CHECK(exec(&s0, "add a 1; sub c 5; mov b c 2", &s, res) == 1 && balances(&s, 6, 10, 2) &&
              !strcmp(res, "a=6; error: insufficient funds in c; b=10 c=2"), "middle failure: %s", res);
    CHECK(exec(&s0, "mov b c 2; sub c 2", &s, res) == 0 && balances(&s, 5, 10, 0), "c funded first");
    CHECK(exec(&s0, "sub c 2; mov b c 2", &s, res) == 1 && balances(&s, 5, 10, 2), "c not yet funded");
    CHECK(exec(&s0, " add  a\t5 ;get a\n", &s, res) == 0 && !strcmp(res, "a=10; a=10"), "whitespace: %s", res);
    CHECK(exec(&s0, "get a;get a;get a;get a;get a;get a;get a;get a", &s, res) == 0, "8 calls");

    /* malformed text: nothing runs, the reason is the result */
    const struct { const char *text, *why; } bad[] = {
        {"", "no calls"}, {" \n ", "no calls"}, {"add a 0", "call 1: bad amount"}, {"add a 05", "call 1: bad amount"},
        {"add a 1000", "call 1: bad amount"}, {"add a -3", "call 1: bad amount"}, {"add a +3", "call 1: bad amount"},
        {"add a x", "call 1: bad amount"}, {"add a 5x", "call 1: bad amount"}, {"add a", "call 1: wrong argument count"},
        {"add a 5 6", "call 1: wrong argument count"}, {"mov a 5", "call 1: wrong argument count"},
        {"get", "call 1: wrong argument count"}, {"ADD a 5", "call 1: unknown tool"}, {"addd a 5", "call 1: unknown tool"},
        {"add A 5", "call 1: bad account"}, {"add ab 5", "call 1: bad account"}, {"add a5", "call 1: wrong argument count"},
        {"mov a 1 5", "call 1: bad account"}, {"add a 5;", "call 2: empty"}, {";add a 5", "call 1: empty"},
        {"add a 5;;get a", "call 2: empty"}, {"get a; get b x", "call 2: wrong argument count"},
        {"add a 5, get a", "call 1: wrong argument count"}, {"get a;get a;get a;get a;get a;get a;get a;get a;get a", "too many calls"},
        {"deposit 5 to a", "call 1: unknown tool"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "error: %s", bad[i].why);
        int rc = exec(&s0, bad[i].text, &s, res);
        CHECK(rc == LEDGER_ERR_MALFORMED && balances(&s, 5, 12, 0) && !strcmp(res, want), "'%s': %d %s (want %s)",
              bad[i].text, rc, res, want);
    }
    s = s0;
    CHECK(ledger_execute(&s, "add a 5\0", 8, res, sizeof res) == LEDGER_ERR_MALFORMED, "a NUL byte in a token");
    s = s0;
    CHECK(ledger_execute(&s, "get a; get zz", 5, res, sizeof res) == 0 && !strcmp(res, "a=5"), "only len bytes are read");
    s = s0;
    CHECK(ledger_execute(&s, NULL, 0, res, sizeof res) == LEDGER_ERR_MALFORMED, "NULL with len 0 is empty");
    s = s0;
    CHECK(ledger_execute(&s, "add a 1", 7, NULL, 0) == 0 && s.balance[0] == 6, "results optional");

    /* buffers: short results leave the state alone; the caps suffice */
    s = s0;
    CHECK(ledger_execute(&s, "add a 1; add b 1", 16, res, 8) == TASK_ERR_FIT && res[0] == 0 && balances(&s, 5, 12, 0),
          "results too short");
    s = s0;
    CHECK(ledger_execute(&s, "add a 1; add b 1", 16, res, 10) == 0 && !strcmp(res, "a=6; b=13"), "exact results fit");
    const char *worst = "sub a 999;sub a 999;sub a 999;sub a 999;sub a 999;sub a 999;sub a 999;sub a 999";
    s = s0;
    int rc = ledger_execute(&s, worst, strlen(worst), res, sizeof res);
    CHECK(rc == 8 && strlen(res) < LEDGER_RESULT_CAP, "8 failures fit: %d %zu", rc, strlen(res));
    ledger_state big = {.n = 5, .balance = {LEDGER_MAX_BALANCE, LEDGER_MAX_BALANCE, LEDGER_MAX_BALANCE,
                                            LEDGER_MAX_BALANCE, LEDGER_MAX_BALANCE}};
    char st[LEDGER_STATE_CAP];
    CHECK(ledger_write_state(&big, st, sizeof st) == 44 && !strcmp(st, "a=999999 b=999999 c=999999 d=999999 e=999999"),
          "largest state %s", st);
    CHECK(ledger_write_state(&big, st, 44) == TASK_ERR_FIT && st[0] == 0, "one byte short");
    ledger_state invalid = state3(-1, 0, 0);
    CHECK(ledger_execute(&invalid, "get a", 5, res, sizeof res) == TASK_ERR_ARG, "negative balance");
    invalid = state3(1, 2, 3);
    invalid.balance[4] = 1;
    CHECK(ledger_execute(&invalid, "get a", 5, res, sizeof res) == TASK_ERR_ARG, "unused entry set");

    /* parse and write round trip */
    ledger_call calls[LEDGER_MAX_CALLS];
    int n = 0;
    char why[LEDGER_WHY_CAP], text[128];
    CHECK(ledger_parse("mov a c 4 ;  get b;add e 999", 28, calls, LEDGER_MAX_CALLS, &n, why, sizeof why) == 0 && n == 3 &&
              calls[0].tool == LEDGER_MOV && calls[0].x == 0 && calls[0].y == 2 && calls[0].amount == 4 &&
              calls[1].tool == LEDGER_GET && calls[1].y == -1 && calls[2].x == 4 && calls[2].amount == 999 && why[0] == 0,
          "parse");
    CHECK(ledger_write_calls(calls, n, text, sizeof text) == 27 && !strcmp(text, "mov a c 4; get b; add e 999"), "%s", text);
    CHECK(ledger_write_calls(calls, n, text, 27) == TASK_ERR_FIT && text[0] == 0, "write one byte short");
    CHECK(ledger_parse("get a", 5, calls, LEDGER_MAX_CALLS, &n, why, 8) == TASK_ERR_FIT, "why too small");
    CHECK(ledger_parse("get a; get b", 12, calls, 1, &n, why, sizeof why) == LEDGER_ERR_MALFORMED &&
              !strcmp(why, "too many calls"), "cap 1: %s", why);
    ledger_call badcall = {LEDGER_ADD, 0, -1, 0};
    CHECK(ledger_write_calls(&badcall, 1, text, sizeof text) == TASK_ERR_ARG, "amount 0 is not writable");
    s = s0;
    ledger_call neg = {LEDGER_GET, -1, -1, 0}, unknown_tool = {9, 0, -1, 1};
    CHECK(ledger_apply(&s, &badcall) == TASK_ERR_ARG && ledger_apply(&s, &neg) == TASK_ERR_ARG &&
              ledger_apply(&s, &unknown_tool) == TASK_ERR_ARG && balances(&s, 5, 12, 0), "calls outside the syntax");
    CHECK(ledger_apply(&invalid, &calls[1]) == TASK_ERR_ARG, "apply on an invalid state");
    CHECK(ledger_write_result(&s, &neg, LEDGER_CALL_OK, text, sizeof text) == TASK_ERR_ARG &&
              ledger_write_result(&s, &calls[2], LEDGER_CALL_OK, text, sizeof text) == TASK_ERR_ARG,
          "no result for an invalid call or an account beyond the state");
}

/* A hand-made episode: a=0 b=7 c=3; turns "deposit 5 to a and send 5 from a to b", "balance of c?",
 * "send all of b to c", "deposit 2 to a and deposit 3 to b". */
static ledger_episode hand_episode(void) {
    ledger_episode ep;
    memset(&ep, 0, sizeof ep);
    ep.n_turns = 4;
    ep.init = state3(0, 7, 3);
    ep.turn[0] = (ledger_turn){"deposit 5 to a and send 5 from a to b", 2,
                               {{LEDGER_ADD, 0, -1, 5}, {LEDGER_MOV, 0, 1, 5}}, state3(0, 12, 3)};
    ep.turn[1] = (ledger_turn){"balance of c?", 1, {{LEDGER_GET, 2, -1, 0}}, state3(0, 12, 3)};
    ep.turn[2] = (ledger_turn){"send all of b to c", 1, {{LEDGER_MOV, 1, 2, 12}}, state3(0, 0, 15)};
    ep.turn[3] = (ledger_turn){"deposit 2 to a and deposit 3 to b", 2,
                               {{LEDGER_ADD, 0, -1, 2}, {LEDGER_ADD, 1, -1, 3}}, state3(2, 3, 15)};
    return ep;
}

static float turn_score(const ledger_episode *ep, int t, const char *text, int graded, char *fb) {
    return ledger_turn_score(ep, t, NULL, text, strlen(text), graded, NULL, NULL, 0, fb, TASK_FEEDBACK_CAP);
}

static void test_reward_rules(void) {
    ledger_episode ep = hand_episode();
    char fb[TASK_FEEDBACK_CAP], res[LEDGER_RESULT_CAP], buf[TASK_REQUEST_CAP];
    const int B = LEDGER_REWARD_BINARY, G = LEDGER_REWARD_GRADED;
    CHECK(ledger_render_turn(&ep, 0, buf, sizeof buf) > 0 &&
              !strcmp(buf, "a=0 b=7 c=3 | deposit 5 to a and send 5 from a to b"), "turn 0: %s", buf);
    CHECK(ledger_render_turn(&ep, 2, buf, sizeof buf) == 18 && !strcmp(buf, "send all of b to c"), "turn 2: %s", buf);
    CHECK(ledger_render_turn(&ep, 4, buf, sizeof buf) == TASK_ERR_ARG, "no turn 4");
    CHECK(ledger_render_turn(&ep, 2, buf, 18) == TASK_ERR_FIT, "no room for the NUL");

    ledger_state after;
    float q = ledger_turn_score(&ep, 0, NULL, "add a 5; mov a b 5", 18, B, &after, res, sizeof res, fb, sizeof fb);
    CHECK(q == 1.0f && !strcmp(fb, "correct") && !strcmp(res, "a=5; a=0 b=12") && balances(&after, 0, 12, 3),
          "right: %f %s %s", q, fb, res);
    CHECK(turn_score(&ep, 0, "add a 5; mov a b 5; get c", B, fb) == 1.0f, "an extra get is harmless");
    CHECK(turn_score(&ep, 0, "get b; add a 5;mov a b 5", G, fb) == 1.0f, "graded is 1 when binary is");
    /* the right calls in the wrong order: the send fails before the deposit */
    CHECK(turn_score(&ep, 0, "mov a b 5; add a 5", B, fb) == 0.0f && !strcmp(fb, "error: insufficient funds in a"), "%s", fb);
    CHECK(test_near(turn_score(&ep, 0, "mov a b 5; add a 5", G, fb), 0.1 + 0.3), "graded wrong order");
    /* one call missing */
    CHECK(turn_score(&ep, 0, "add a 5", B, fb) == 0.0f && !strcmp(fb, "wrong: a=5 b=7 c=3"), "%s", fb);
    CHECK(test_near(turn_score(&ep, 0, "add a 5", G, fb), 0.1 + 0.2 + 0.15), "graded one of two");
    /* the right state by other calls: the requested calls are missing */
    CHECK(turn_score(&ep, 0, "add b 5", B, fb) == 0.0f && !strcmp(fb, "missing a requested call"), "%s", fb);
    CHECK(test_near(turn_score(&ep, 0, "add b 5", G, fb), 0.1 + 0.2 + 0.3), "graded right state");
    /* all calls present and the right state, but an extra call fails */
    CHECK(turn_score(&ep, 0, "add a 5; mov a b 5; sub c 9", B, fb) == 0.0f && !strcmp(fb, "error: insufficient funds in c"),
          "%s", fb);
    CHECK(test_near(turn_score(&ep, 0, "add a 5; mov a b 5; sub c 9", G, fb), 0.1 + 0.3 + 0.3), "graded failing extra");
    CHECK(turn_score(&ep, 0, "add a 5; mov a b 5;", G, fb) == 0.0f && !strcmp(fb, "malformed"), "malformed: %s", fb);
    CHECK(turn_score(&ep, 0, "add a 5; mov a b 4", B, fb) == 0.0f && !strcmp(fb, "wrong: a=1 b=11 c=3"), "%s", fb);

    CHECK(turn_score(&ep, 1, "get c", B, fb) == 1.0f, "get");
    CHECK(turn_score(&ep, 1, "get a", B, fb) == 0.0f && !strcmp(fb, "missing a requested call"), "wrong get: %s", fb);
    CHECK(turn_score(&ep, 1, "get a; get c", B, fb) == 1.0f, "extra get");
    CHECK(turn_score(&ep, 1, "get c; get c", B, fb) == 1.0f, "repeated get");
    CHECK(turn_score(&ep, 1, "get d", B, fb) == 0.0f && !strcmp(fb, "error: unknown account d"), "%s", fb);

    CHECK(turn_score(&ep, 2, "mov b c 12", B, fb) == 1.0f, "send all from the ground-truth state");
    CHECK(turn_score(&ep, 2, "mov b c 7", B, fb) == 0.0f && !strcmp(fb, "wrong: a=0 b=5 c=10"), "stale balance: %s", fb);
    CHECK(turn_score(&ep, 2, "mov b c 13", B, fb) == 0.0f && !strcmp(fb, "error: insufficient funds in b"), "%s", fb);
    /* from a state the policy's earlier turns produced: the target is still the recorded one */
    ledger_state mine = state3(5, 7, 3);
    CHECK(ledger_turn_score(&ep, 2, &mine, "mov b c 7", 9, B, &after, NULL, 0, fb, sizeof fb) == 0.0f &&
              balances(&after, 5, 0, 10), "diverged state: %s", fb);
    mine = state3(0, 12, 3);
    CHECK(ledger_turn_score(&ep, 2, &mine, "mov b c 12", 10, B, NULL, NULL, 0, NULL, 0) == 1.0f, "the same state");

    /* order does not matter when nothing fails */
    CHECK(turn_score(&ep, 3, "add b 3; add a 2", B, fb) == 1.0f, "commuting calls");
    CHECK(turn_score(&ep, 3, "add a 5", B, fb) == 0.0f && !strcmp(fb, "wrong: a=5 b=0 c=15"), "%s", fb);
    CHECK(test_near(turn_score(&ep, 3, "add a 2; add a 2", G, fb), 0.1 + 0.2 + 0.15), "a matched call counts once");

    /* argument errors and short buffers */
    CHECK(turn_score(&ep, 4, "get c", B, fb) == -1.0f, "turn out of range");
    CHECK(turn_score(&ep, -1, "get c", B, fb) == -1.0f, "negative turn");
    CHECK(turn_score(&ep, 1, "get c", 2, fb) == -1.0f, "unknown reward variant");
    ledger_state two = {.n = 2, .balance = {1, 2}};
    CHECK(ledger_turn_score(&ep, 1, &two, "get c", 5, B, NULL, NULL, 0, NULL, 0) == -1.0f, "state of another size");
    CHECK(ledger_turn_score(&ep, 0, NULL, "add a 5", 7, B, NULL, NULL, 0, fb, 8) == -1.0f && fb[0] == 0, "feedback short");
    CHECK(ledger_turn_score(&ep, 0, NULL, "add a 5", 7, B, NULL, res, 3, fb, sizeof fb) == -1.0f && res[0] == 0,
          "results short");
    CHECK(ledger_turn_score(&ep, 0, NULL, "add a 5", 7, B, NULL, NULL, 0, NULL, 0) == 0.0f, "outputs optional");
    ledger_episode broken = ep;
    broken.turn[1].n_calls = 3;
    task_rng r = task_rng_seeded(1);
    CHECK(ledger_turn_score(&broken, 1, NULL, "get c", 5, B, NULL, NULL, 0, NULL, 0) == -1.0f &&
              ledger_teacher_turn(&broken, 1, &r, 1.0f, buf, sizeof buf) == TASK_ERR_ARG &&
              ledger_teacher_improve(&broken, 1, "get c", 5, &r, 1.0f, buf, sizeof buf) == TASK_ERR_ARG &&
              ledger_render_turn(&broken, 1, buf, sizeof buf) == TASK_ERR_ARG, "a turn with 3 ground-truth calls");
    broken = ep;
    broken.turn[0].after.balance[0] = -1;
    CHECK(ledger_turn_score(&broken, 1, NULL, "get c", 5, B, NULL, NULL, 0, NULL, 0) == -1.0f, "an invalid state before");
    CHECK(ledger_turn_score(&broken, 0, NULL, "get c", 5, B, NULL, NULL, 0, NULL, 0) == -1.0f, "an invalid state after");
}

/* Every generated episode, over all knob levels: ground-truth calls run without error from the
 * previous ground-truth state and give the recorded state; requests fit and follow the level; the
 * teacher's slips are wrong and one improve step fixes them; generation is deterministic. */
static void test_generated_episodes(void) {
    static ledger_episode ep, again, short_ep;
    const int turn_settings[] = {1, 4, 60};
    int bad_replay = 0, bad_text = 0, bad_level = 0, not_deterministic = 0, first_turn_differs = 0;
    int teacher_right_miss = 0, slip_not_wrong = 0, slip_malformed = 0, slip_not_fixed = 0, bad_knob = 0;
    long turns_seen = 0, two_part = 0, send_all = 0, movs = 0, gets = 0, max_balance = 0;
    int slip_feedback_kind[4] = {0}; /* error, wrong, missing, other */
    for (int accounts = 2; accounts <= LEDGER_MAX_ACCOUNTS; accounts++)
        for (int tools = 1; tools <= 3; tools++)
            for (int ts = 0; ts < 3; ts++)
                for (uint64_t seed = 0; seed < 150; seed++) {
                    task_instance in = {.domain = TASK_DOMAIN_LEDGER, .seed = seed * 7919 + (uint64_t)accounts,
                                        .knobs = {accounts, turn_settings[ts], tools}};
                    if (ledger_generate(&in, &ep) || ledger_generate(&in, &again)) {
                        CHECK(0, "generation failed");
                        return;
                    }
                    not_deterministic += memcmp(&ep, &again, sizeof ep) != 0;
                    task_instance one = in;
                    one.knobs[LEDGER_KNOB_TURNS] = 1;
                    ledger_generate(&one, &short_ep);
                    first_turn_differs += memcmp(&short_ep.init, &ep.init, sizeof ep.init) != 0 ||
                                          memcmp(&short_ep.turn[0], &ep.turn[0], sizeof ep.turn[0]) != 0;
                    bad_knob += ep.n_turns != turn_settings[ts] || ep.init.n != accounts;
                    for (int i = 0; i < LEDGER_MAX_ACCOUNTS; i++)
                        bad_knob += i < accounts ? ep.init.balance[i] < 0 || ep.init.balance[i] > 20 : ep.init.balance[i] != 0;
                    char buf[TASK_REQUEST_CAP], res[LEDGER_RESULT_CAP], text[TASK_ANSWER_CAP], fb[TASK_FEEDBACK_CAP];
                    int len = ledger_render_turn(&ep, 0, buf, sizeof buf);
                    bad_text += len < 0 || len >= TASK_REQUEST_CAP || (int)strlen(buf) != len;
                    task_rng r = task_rng_seeded(seed ^ 0x5EED);
                    for (int t = 0; t < ep.n_turns; t++) {
                        const ledger_turn *gt = &ep.turn[t];
                        const ledger_state *before = ledger_state_before(&ep, t);
                        turns_seen++;
                        const char *nul = memchr(gt->request, 0, LEDGER_TURN_REQUEST_CAP);
                        size_t rl = nul ? (size_t)(nul - gt->request) : LEDGER_TURN_REQUEST_CAP;
                        bad_text += rl == 0 || rl >= LEDGER_TURN_REQUEST_CAP ||
                                    (t > 0 && ledger_render_turn(&ep, t, buf, sizeof buf) != (int)rl);
                        /* replay the canonical calls from the previous ground-truth state */
                        int n = ledger_write_calls(gt->calls, gt->n_calls, text, sizeof text);
                        ledger_state s = *before;
                        int failed = n < 0 ? -1 : ledger_execute(&s, text, (size_t)n, res, sizeof res);
                        bad_replay += failed != 0 || memcmp(&s, &gt->after, sizeof s) != 0 || strstr(res, "error") != NULL ||
                                      ledger_turn_score(&ep, t, NULL, text, (size_t)n, LEDGER_REWARD_BINARY, NULL, NULL, 0,
                                                        NULL, 0) != 1.0f;
                        for (int i = 0; i < accounts; i++)
                            if (gt->after.balance[i] > max_balance) max_balance = gt->after.balance[i];
                        /* the level's request kinds only */
                        int has_mov = 0, is_send_all = strncmp(gt->request, "send all", 8) == 0 ||
                                                       strstr(gt->request, "and send all") != NULL;
                        for (int c = 0; c < gt->n_calls; c++) {
                            has_mov |= gt->calls[c].tool == LEDGER_MOV;
                            gets += gt->calls[c].tool == LEDGER_GET;
                            bad_level += gt->calls[c].amount > LEDGER_MAX_AMOUNT;
                        }
                        movs += has_mov;
                        two_part += gt->n_calls == 2;
                        send_all += is_send_all;
                        if (tools == 1) bad_level += has_mov || gt->n_calls != 1;
                        if (tools == 2) bad_level += gt->n_calls != 1 || is_send_all;
                        if (gt->n_calls == 1 && strncmp(gt->request, "send all of ", 12) == 0)
                            bad_level += gt->calls[0].amount != before->balance[gt->calls[0].x];
                        /* the teacher: right at p = 1; a wrong, well-formed slip at p = 0, fixed in one step */
                        n = ledger_teacher_turn(&ep, t, &r, 1.0f, text, sizeof text);
                        teacher_right_miss += n < 0 || ledger_turn_score(&ep, t, NULL, text, (size_t)n, LEDGER_REWARD_BINARY,
                                                                         NULL, NULL, 0, NULL, 0) != 1.0f;
                        n = ledger_teacher_turn(&ep, t, &r, 0.0f, text, sizeof text);
                        float q = n < 0 ? -1.0f : ledger_turn_score(&ep, t, NULL, text, (size_t)n, LEDGER_REWARD_BINARY,
                                                                    NULL, NULL, 0, fb, sizeof fb);
                        ledger_call calls[LEDGER_MAX_CALLS];
                        int nc;
                        slip_malformed += n < 0 || ledger_parse(text, (size_t)n, calls, LEDGER_MAX_CALLS, &nc, NULL, 0) != 0;
                        slip_not_wrong += q != 0.0f;
                        slip_feedback_kind[!strncmp(fb, "error", 5) ? 0 : !strncmp(fb, "wrong", 5) ? 1
                                           : !strncmp(fb, "missing", 7) ? 2 : 3]++;
                        char fixed[TASK_ANSWER_CAP];
                        int m = ledger_teacher_improve(&ep, t, text, (size_t)n, &r, 1.0f, fixed, sizeof fixed);
                        slip_not_fixed += m < 0 || ledger_turn_score(&ep, t, NULL, fixed, (size_t)m, LEDGER_REWARD_BINARY,
                                                                     NULL, NULL, 0, NULL, 0) != 1.0f;
                    }
                }
    printf("ledger episodes: %ld turns, two-part %ld, send-all %ld, with mov %ld, get %ld, largest balance %ld; "
           "slip feedback: error %d wrong %d missing %d other %d\n",
           turns_seen, two_part, send_all, movs, gets, max_balance, slip_feedback_kind[0], slip_feedback_kind[1],
           slip_feedback_kind[2], slip_feedback_kind[3]);
    CHECK(bad_replay == 0, "%d ground-truth turns fail or miss their recorded state", bad_replay);
    CHECK(bad_text == 0, "%d request texts empty, too long or rendered wrong", bad_text);
    CHECK(bad_level == 0, "%d turns outside their tools level", bad_level);
    CHECK(bad_knob == 0, "%d episodes not following their knobs", bad_knob);
    CHECK(not_deterministic == 0, "%d episodes differ between two generations", not_deterministic);
    CHECK(first_turn_differs == 0, "%d first turns depend on the turns knob", first_turn_differs);
    CHECK(teacher_right_miss == 0, "%d right teacher answers not right", teacher_right_miss);
    CHECK(slip_malformed == 0 && slip_not_wrong == 0, "teacher slips: %d malformed, %d not wrong", slip_malformed,
          slip_not_wrong);
    CHECK(slip_not_fixed == 0, "%d teacher slips not fixed by one best improve step", slip_not_fixed);
    CHECK(slip_feedback_kind[3] == 0 && slip_feedback_kind[0] > 0 && slip_feedback_kind[1] > 0 && slip_feedback_kind[2] > 0,
          "slips give every kind of feedback");
    CHECK(two_part > 1000 && send_all > 1000 && movs > 1000 && gets > 1000, "every request kind appears");
    CHECK(max_balance < 2500, "balances stay small: %ld", max_balance);
}

/* A random well-formed attempt: 1..4 random calls over the accounts plus one beyond them. */
static int random_attempt(task_rng *r, int accounts, char *buf, size_t cap) {
    ledger_call calls[4];
    int n = 1 + (int)task_rng_below(r, 4);
    for (int i = 0; i < n; i++) {
        int tool = 1 + (int)task_rng_below(r, 4);
        int x = (int)task_rng_below(r, (uint32_t)accounts + 1), y = (int)task_rng_below(r, (uint32_t)accounts + 1);
        calls[i] = (ledger_call){tool, x, tool == LEDGER_MOV ? y : -1, tool == LEDGER_GET ? 0 : (int)task_rng_range(r, 1, 25)};
    }
    return ledger_write_calls(calls, n, buf, cap);
}

static void test_teacher(void) {
    const task_domain *d = &task_ledger;
    /* accuracy near the default p_correct, through the single-turn view */
    task_instance in = {.domain = TASK_DOMAIN_LEDGER, .knobs = {4, 4, 3}};
    float p_default = d->teacher_p_correct(&in);
    CHECK(fabsf(p_default - (0.9f - 0.2f - 0.1f)) < 1e-6f, "default accuracy %f", p_default);
    task_instance easy = {.domain = TASK_DOMAIN_LEDGER, .knobs = {2, 1, 1}};
    CHECK(fabsf(d->teacher_p_correct(&easy) - 0.9f) < 1e-6f, "easiest %f", d->teacher_p_correct(&easy));
    task_rng r = task_rng_seeded(3);
    const int N = 4000;
    int right = 0;
    for (int i = 0; i < N; i++) {
        in.seed = (uint64_t)i;
        char ans[TASK_ANSWER_CAP];
        int len = d->teacher_answer(&in, &r, -1.0f, ans, sizeof ans);
        right += len >= 0 && d->score(&in, ans, (size_t)len, NULL, 0) == 1.0f;
    }
    CHECK(fabs((double)right / N - p_default) < 0.03, "accuracy %.3f, expected %.3f", (double)right / N, p_default);

    /* teacher_improve: keeps right byte for byte, answers malformed with a well-formed attempt,
     * strictly improves any well-formed wrong attempt, and hill-climbing reaches the right answer */
    int not_kept = 0, malformed_bad = 0, not_better = 0, not_solved = 0, steps_total = 0, wrong_seen = 0;
    for (int i = 0; i < 2000; i++) {
        in.seed = 1000003u * (uint64_t)i;
        in.knobs[LEDGER_KNOB_ACCOUNTS] = 2 + i % 4;
        in.knobs[LEDGER_KNOB_TOOLS] = 1 + i % 3;
        char ans[TASK_ANSWER_CAP], out[TASK_ANSWER_CAP], spaced[TASK_ANSWER_CAP + 8];
        int len = d->teacher_answer(&in, &r, 1.0f, ans, sizeof ans);
        int sl = snprintf(spaced, sizeof spaced, "  %s ; get a \n", ans);
        int n = d->teacher_improve(&in, spaced, (size_t)sl, &r, -1.0f, out, sizeof out);
        not_kept += n != sl || memcmp(out, spaced, (size_t)sl) != 0;
        const char *garbage = i % 2 ? "deposit 5 to a" : "\xff;;";
        n = d->teacher_improve(&in, garbage, strlen(garbage), &r, 0.5f, out, sizeof out);
        malformed_bad += n < 0 || d->well_formed(&in, out, (size_t)n) != 1 || !(d->score(&in, out, (size_t)n, NULL, 0) > 0.0f);
        len = random_attempt(&r, in.knobs[LEDGER_KNOB_ACCOUNTS], ans, sizeof ans);
        float q = d->score(&in, ans, (size_t)len, NULL, 0);
        if (q >= 1.0f) continue;
        wrong_seen++;
        int steps = 0;
        while (q < 1.0f && steps < 20) {
            n = d->teacher_improve(&in, ans, (size_t)len, &r, 0.0f /* a random better edit */, out, sizeof out);
            float q2 = n < 0 ? -1.0f : d->score(&in, out, (size_t)n, NULL, 0);
            if (!(q2 > q)) {
                not_better++;
                break;
            }
            memcpy(ans, out, (size_t)n + 1);
            len = n;
            q = q2;
            steps++;
        }
        not_solved += q < 1.0f;
        steps_total += steps;
    }
    printf("ledger teacher: accuracy %.3f (default %.3f); %d random wrong attempts solved in %.2f improve steps on average\n",
           (double)right / N, p_default, wrong_seen, wrong_seen ? (double)steps_total / wrong_seen : 0.0);
    CHECK(not_kept == 0, "%d right attempts not kept byte for byte", not_kept);
    CHECK(malformed_bad == 0, "%d malformed attempts not answered with a well-formed, better one", malformed_bad);
    CHECK(wrong_seen > 1000 && not_better == 0, "%d of %d improve steps not strictly better", not_better, wrong_seen);
    CHECK(not_solved == 0, "%d attempts not solved by hill climbing", not_solved);

    /* determinism: the same rng state gives the same answers */
    task_rng r1 = task_rng_seeded(9), r2 = task_rng_seeded(9);
    int same = 1;
    for (int i = 0; i < 200; i++) {
        in.seed = (uint64_t)i;
        char a1[TASK_ANSWER_CAP], a2[TASK_ANSWER_CAP];
        int n1 = d->teacher_answer(&in, &r1, 0.5f, a1, sizeof a1), n2 = d->teacher_answer(&in, &r2, 0.5f, a2, sizeof a2);
        same &= n1 == n2 && n1 > 0 && !strcmp(a1, a2);
        n1 = d->teacher_improve(&in, a1, (size_t)n1, &r1, 0.5f, a1, sizeof a1);
        n2 = d->teacher_improve(&in, a2, (size_t)n2, &r2, 0.5f, a2, sizeof a2);
        same &= n1 == n2 && n1 > 0;
    }
    CHECK(same, "teacher draws are deterministic");
    char tiny[4];
    CHECK(d->teacher_answer(&in, &r, 1.0f, tiny, sizeof tiny) == TASK_ERR_FIT && tiny[0] == 0, "4-byte buffer");
}

static void test_single_turn_view(void) {
    const task_domain *d = task_domain_find("ledger");
    CHECK(d == &task_ledger && task_domain_by_id(TASK_DOMAIN_LEDGER) == d, "registered");
    int32_t k[TASK_MAX_KNOBS];
    char why[160];
    CHECK(task_knobs_parse(d, "", k, why, sizeof why) == 0 && k[0] == 3 && k[1] == 4 && k[2] == 2 && k[3] == 0, "defaults");
    CHECK(task_knobs_parse(d, "accounts=5, turns=60, tools=3", k, why, sizeof why) == 0 && k[0] == 5 && k[1] == 60 &&
              k[2] == 3, "%s", why);
    CHECK(task_knobs_parse(d, "accounts=6", k, why, sizeof why) == -1 && strstr(why, "[2, 5]"), "%s", why);
    CHECK(task_knobs_parse(d, "tools=0", k, why, sizeof why) == -1, "tools 0");
    CHECK(task_knobs_parse(d, "turns=61", k, why, sizeof why) == -1, "turns 61");

    task_instance in;
    task_knobs_parse(d, "accounts=5,turns=60,tools=3", k, why, sizeof why);
    CHECK(task_draw(d, k, TASK_SPLIT_HELDOUT, 4, 2, &in, why, sizeof why) == 0, "%s", why);
    static ledger_episode ep;
    ledger_generate(&in, &ep);
    char a[TASK_REQUEST_CAP], b[TASK_REQUEST_CAP];
    int n = d->render_request(&in, a, sizeof a);
    CHECK(n > 0 && ledger_render_turn(&ep, 0, b, sizeof b) == n && !strcmp(a, b) && strstr(a, "a=") == a &&
              strstr(a, " e=") && strstr(a, " | "), "request %s", a);
    CHECK(d->render_request(&in, a, (size_t)n) == TASK_ERR_FIT, "no room for the NUL");
    CHECK(d->render_request(&in, a, (size_t)n + 1) == n, "exactly enough room");
    char ans[TASK_ANSWER_CAP], fb1[TASK_FEEDBACK_CAP], fb2[TASK_FEEDBACK_CAP];
    task_rng r = task_rng_seeded(1);
    for (int i = 0; i < 50; i++) {
        int len = d->teacher_answer(&in, &r, 0.5f, ans, sizeof ans);
        float s1 = d->score(&in, ans, (size_t)len, fb1, sizeof fb1);
        float s2 = ledger_turn_score(&ep, 0, NULL, ans, (size_t)len, LEDGER_REWARD_GRADED, NULL, NULL, 0, fb2, sizeof fb2);
        CHECK(s1 == s2 && !strcmp(fb1, fb2) && d->well_formed(&in, ans, (size_t)len) == 1, "view = turn 0: %f %f", s1, s2);
    }
    CHECK(d->well_formed(&in, "add z 5", 7) == 1 && d->well_formed(&in, "add a 5;", 8) == 0, "well_formed is syntax");
    task_instance bad = in;
    bad.knobs[LEDGER_KNOB_TOOLS] = 4;
    CHECK(d->render_request(&bad, a, sizeof a) == TASK_ERR_ARG && d->score(&bad, "get a", 5, NULL, 0) == -1.0f &&
              d->well_formed(&bad, "get a", 5) == -1 && d->teacher_answer(&bad, &r, 1.0f, ans, sizeof ans) == TASK_ERR_ARG,
          "invalid knobs");
    bad = in;
    bad.domain = TASK_DOMAIN_KNAPSACK;
    CHECK(ledger_generate(&bad, &ep) == -1, "another domain's instance");
    /* the largest turn 0 fits the request cap with room to spare */
    task_instance big = {.domain = TASK_DOMAIN_LEDGER, .knobs = {5, 1, 3}};
    int longest = 0;
    for (uint64_t s = 0; s < 20000; s++) {
        big.seed = s;
        int len = d->render_request(&big, a, sizeof a);
        if (len > longest) longest = len;
    }
    CHECK(longest > 0 && longest < TASK_REQUEST_CAP / 2, "longest first turn %d bytes", longest);
}

/* ---- the multi-turn view (task.h task_episode), turn prompts and multi-turn demonstrations ---- */

/* Appends a token / the bytes of text to want[*n]. */
static void want_tok(int *want, int *n, int id) { want[(*n)++] = id; }
static void want_text(int *want, int *n, const char *text) {
    for (const char *c = text; *c; c++) want[(*n)++] = (unsigned char)*c;
}

static void test_multi_turn(void) {
    const task_domain *d = &task_ledger;
    const task_episode *E = d->episode;
    CHECK(E && E->turns && E->initial_state && E->render_turn && E->score_turn && E->teacher_turn &&
              E->teacher_improve_turn, "ledger has the multi-turn view");
    int32_t k[TASK_MAX_KNOBS];
    char why[160];
    CHECK(task_knobs_parse(d, "turns=4,tools=3", k, why, sizeof why) == 0, "%s", why);
    static ledger_episode ep;
    unsigned char state[TASK_STATE_CAP], after[TASK_STATE_CAP];
    char text[TASK_REQUEST_CAP], want[TASK_REQUEST_CAP], results[TASK_RESULTS_CAP], gt[TASK_ANSWER_CAP];
    int bad_episode = 0;
    /* 1. The episode functions follow ledger_generate's ground truth, turn after turn. */
    for (uint64_t i = 0; i < 300; i++) {
        task_instance in;
        CHECK(task_draw(d, k, TASK_SPLIT_TRAIN, 9, i, &in, why, sizeof why) == 0, "%s", why);
        ledger_generate(&in, &ep);
        int ok = E->turns(&in) == 4 && ep.n_turns == 4 && E->initial_state(&in, state) == 0 &&
                 !memcmp(state, &ep.init, sizeof ep.init);
        for (int t = 0; t < 4 && ok; t++) {
            int n = E->render_turn(&in, t, text, sizeof text);
            ok &= n > 0 && ledger_render_turn(&ep, t, want, sizeof want) == n && !strcmp(text, want);
            int g = ledger_write_calls(ep.turn[t].calls, ep.turn[t].n_calls, gt, sizeof gt);
            ok &= E->score_turn(&in, t, state, gt, (size_t)g, after, results, sizeof results, NULL, 0) == 1.0f &&
                  !memcmp(after, &ep.turn[t].after, sizeof ep.turn[t].after);
            memcpy(state, after, sizeof state);
        }
        ok &= E->render_turn(&in, 0, text, sizeof text) == d->render_request(&in, want, sizeof want) && !strcmp(text, want);
        ok &= E->render_turn(&in, 4, text, sizeof text) == TASK_ERR_ARG && E->render_turn(&in, -1, text, sizeof text) == TASK_ERR_ARG;
        bad_episode += !ok;
    }
    CHECK(bad_episode == 0, "%d episodes where the multi-turn view departs from the ground truth", bad_episode);

    /* 2. Turn prompts: turn 0 is task_render_prompt's; a later turn shows each earlier turn as played. */
    task_instance in;
    CHECK(task_draw(d, k, TASK_SPLIT_TRAIN, 9, 0, &in, why, sizeof why) == 0, "%s", why);
    int a[512], b[512], w[512], nw = 0;
    int na = task_render_turn_prompt(d, &in, 0, NULL, TASK_PROMPT_IMPROVE, "get a", 5, "correct", 7, a, 512);
    int nb = task_render_prompt(d, &in, TASK_PROMPT_IMPROVE, "get a", 5, "correct", 7, b, 512);
    CHECK(na > 0 && na == nb && !memcmp(a, b, sizeof(int) * (size_t)na), "turn 0 = the single-turn prompt");
    const task_turn_record earlier[2] = {{"add a 5", 7, "a=10", 4}, {"get b", 5, "b=12", 4}};
    na = task_render_turn_prompt(d, &in, 2, earlier, TASK_PROMPT_BASE, NULL, 0, NULL, 0, a, 512);
    want_tok(w, &nw, TOK_BOS);
    for (int t = 0; t < 3; t++) {
        E->render_turn(&in, t, text, sizeof text);
        want_tok(w, &nw, TOK_REQUEST);
        want_text(w, &nw, text);
        want_tok(w, &nw, TOK_ANSWER);
        if (t == 2) break;
        want_text(w, &nw, earlier[t].answer);
        want_tok(w, &nw, TOK_FEEDBACK);
        want_text(w, &nw, earlier[t].results);
    }
    CHECK(na == nw && !memcmp(a, w, sizeof(int) * (size_t)nw), "turn 2's prompt: %d tokens, want %d", na, nw);
    CHECK(task_render_turn_prompt(d, &in, 2, earlier, TASK_PROMPT_BASE, NULL, 0, NULL, 0, a, nw - 1) == TASK_ERR_FIT,
          "one token short: TASK_ERR_FIT");
    CHECK(task_render_turn_prompt(d, &in, 4, earlier, TASK_PROMPT_BASE, NULL, 0, NULL, 0, a, 512) == TASK_ERR_ARG &&
              task_render_turn_prompt(d, &in, 1, NULL, TASK_PROMPT_BASE, NULL, 0, NULL, 0, a, 512) == TASK_ERR_ARG &&
              task_render_turn_prompt(d, &in, 0, NULL, TASK_PROMPT_IMPROVE, NULL, 0, NULL, 0, a, 512) == TASK_ERR_ARG,
          "turn outside the episode, no history, an improve prompt without an attempt");
    task_instance ks;
    int32_t kk[TASK_MAX_KNOBS];
    task_knobs_default(&task_knapsack, kk);
    CHECK(task_draw(&task_knapsack, kk, TASK_SPLIT_TRAIN, 1, 0, &ks, why, sizeof why) == 0 &&
              task_render_turn_prompt(&task_knapsack, &ks, 0, NULL, TASK_PROMPT_BASE, NULL, 0, NULL, 0, a, 512) ==
                  TASK_ERR_ARG,
          "a single-turn domain has no turn prompts");

    /* 3. Multi-turn demonstrations: a uniform turn; the history is the teacher's right answers with
     * the results that executing them from the initial state gives; the target answers the last turn. */
    task_demo_options opt = {.p_improve = 0.3f, .p_feedback = 0.5f, .p_correct = -1, .targets = TASK_DEMO_IMPROVE,
                             .p_shown_correct = 0.5f};
    task_rng rng = task_rng_seeded(31);
    enum { N = 4000 };
    int turn_count[4] = {0}, bad_history = 0, base = 0, base_right = 0, improve = 0, improve_worse = 0;
    int tokens[512], targets[512];
    for (int i = 0; i < N; i++) {
        CHECK(task_draw(d, k, TASK_SPLIT_TRAIN, 11, (uint64_t)i, &in, why, sizeof why) == 0, "%s", why);
        int len = task_make_demo(d, &in, &rng, &opt, tokens, targets, 512);
        if (len < 0) {
            CHECK(0, "demo %d: %d", i, len);
            return;
        }
        int t = 0, p = 1;
        E->initial_state(&in, state);
        char seg[3][TASK_RESULTS_CAP];
        for (;;) { /* REQUEST req ANSWER ans FEEDBACK res, or the last turn */
            int q = p + 1, ns = 0, lens[3] = {0};
            int kinds[3] = {TOK_ANSWER, TOK_FEEDBACK, TOK_REQUEST};
            for (; q < len && ns < 3; q++) {
                if (tokens[q] == kinds[ns] || (ns == 0 && tokens[q] == TOK_RESPONSE)) {
                    seg[ns][lens[ns]] = 0;
                    if (tokens[q] != kinds[ns]) break;
                    ns++;
                    if (ns == 3) break;
                } else if (tokens[q] < 256 && lens[ns] < TASK_RESULTS_CAP - 1) {
                    seg[ns][lens[ns]++] = (char)tokens[q];
                }
            }
            if (ns < 3) break; /* the last turn: its request runs into RESPONSE or ANSWER */
            /* an earlier turn: seg[0] its request, seg[1] its answer, seg[2] its results */
            E->render_turn(&in, t, text, sizeof text);
            float r = E->score_turn(&in, t, state, seg[1], strlen(seg[1]), after, results, sizeof results, NULL, 0);
            bad_history += r < 0.0f || strcmp(seg[0], text) != 0 || strcmp(seg[2], results) != 0;
            memcpy(state, after, sizeof state);
            p = q;
            t++;
        }
        if (t > 3) {
            bad_history++;
            continue;
        }
        turn_count[t]++;
        /* the target: the bytes after the last ANSWER */
        int ans = len - 1;
        while (ans > 0 && tokens[ans] != TOK_ANSWER) ans--;
        char target[TASK_ANSWER_CAP];
        int tl = 0;
        for (int j = ans + 1; j < len && tl < TASK_ANSWER_CAP - 1; j++) target[tl++] = (char)tokens[j];
        target[tl] = 0;
        float q = E->score_turn(&in, t, state, target, (size_t)tl, NULL, NULL, 0, NULL, 0);
        int is_improve = 0;
        for (int j = 0; j < ans; j++) is_improve |= tokens[j] == TOK_IMPROVE;
        if (is_improve) {
            /* the attempt shown is between the last RESPONSE and FEEDBACK / IMPROVE */
            int r0 = ans;
            while (r0 > 0 && tokens[r0] != TOK_RESPONSE) r0--;
            char shown[TASK_ANSWER_CAP];
            int sl = 0;
            for (int j = r0 + 1; j < ans && tokens[j] < 256 && sl < TASK_ANSWER_CAP - 1; j++) shown[sl++] = (char)tokens[j];
            improve++;
            improve_worse += q < E->score_turn(&in, t, state, shown, (size_t)sl, NULL, NULL, 0, NULL, 0);
        } else {
            base++;
            base_right += q >= 1.0f;
        }
    }
    printf("multi-turn demos: turns %d %d %d %d, base right %d/%d, improve worse %d/%d\n", turn_count[0], turn_count[1],
           turn_count[2], turn_count[3], base_right, base, improve_worse, improve);
    CHECK(bad_history == 0, "%d demos whose history is not the teacher's turns as executed", bad_history);
    for (int t = 0; t < 4; t++) CHECK(fabs(turn_count[t] / (double)N - 0.25) < 0.03, "turn %d drawn %d/%d", t, turn_count[t], N);
    CHECK(fabs(base / (double)N - 0.7) < 0.03, "base share %d/%d", base, N);
    CHECK(improve_worse == 0, "%d improve targets worse than the attempt shown", improve_worse);
    /* base targets are the teacher's, right with its accuracy (the history is right, so the state
     * before the turn is the ground truth's) */
    CHECK(fabs(base_right / (double)base - ledger_teacher_p_correct(&in)) < 0.04, "base targets right %d/%d, teacher %.2f",
          base_right, base, ledger_teacher_p_correct(&in));
}

int main(void) {
    test_tools_and_errors();
    test_reward_rules();
    test_generated_episodes();
    test_teacher();
    test_single_turn_view();
    test_multi_turn();
    return test_finish("test_tasks_ledger");
}
