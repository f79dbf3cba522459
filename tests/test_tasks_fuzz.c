/* Bounded fuzzing of every domain's answer parser/verifier: 200k inputs per domain (random bytes,
 * random strings over the answer alphabet, random sequences of answer tokens such as ledger's tool
 * names, accounts and ';', and mutations of teacher answers), each copied into a heap buffer of
 * exactly its length with no NUL after it, so that an AddressSanitizer build
 * (-DEXITRL_SANITIZE=ON) catches any read past len. Every reward must lie in [0,1] and every
 * feedback must be a NUL-terminated string within its buffer. The ledger environment's
 * ledger_execute is also fuzzed directly, from random states with random results buffers. */
#include <stdlib.h>
#include <string.h>

#include "tasks/expr.h"
#include "tasks/ledger.h"
#include "tasks/task.h"
#include "test_util.h"

enum { INPUTS_PER_DOMAIN = 200000, MAX_LEN = 48 /* of generated strings */,
       BUF_LEN = 2 * TASK_ANSWER_CAP /* of mutated answers */ };

/* arith, countdown and knapsack answers; ledger's tools (add sub mov get), accounts and ';' */
static const char alphabet[] = "0123456789+-*/()= \n\t,:xabcdegmostuvz;";
/* whole answer tokens, so that random sequences often parse as ledger calls */
static const char *const tokens[] = {"add ", "sub ", "mov ", "get ", "a ", "b ", "c ", "d ", "e ", "z ", "A ",
                                     "5", "12 ", "999", "1000", "0", "07", "-3", "; ", ";", " ", "\n", "ab", "+"};
enum { N_TOKENS = (int)(sizeof tokens / sizeof tokens[0]) };

static size_t random_input(task_rng *r, char *buf, const task_domain *d, const task_instance *in) {
    uint32_t kind = task_rng_below(r, 20);
    size_t len;
    if (kind < 5) { /* arbitrary bytes */
        len = task_rng_below(r, MAX_LEN + 1);
        for (size_t i = 0; i < len; i++) buf[i] = (char)task_rng_below(r, 256);
        return len;
    }
    if (kind < 9) { /* strings over the characters answers are made of */
        len = task_rng_below(r, MAX_LEN + 1);
        for (size_t i = 0; i < len; i++) buf[i] = alphabet[task_rng_below(r, sizeof alphabet - 1)];
        return len;
    }
    if (kind < 12) { /* sequences of answer tokens, up to MAX_LEN bytes */
        len = 0;
        for (int k = (int)task_rng_below(r, 13); k > 0; k--) {
            const char *t = tokens[task_rng_below(r, N_TOKENS)];
            size_t n = strlen(t);
            if (len + n > MAX_LEN) break;
            memcpy(buf + len, t, n);
            len += n;
        }
        return len;
    }
    /* a teacher answer (right or wrong) with a few mutations, or none */
    char ans[TASK_ANSWER_CAP];
    int n = d->teacher_answer(in, r, 0.5f, ans, sizeof ans);
    len = n > 0 ? (size_t)n : 0;
    memcpy(buf, ans, len);
    int edits = (int)task_rng_below(r, 4);
    for (int e = 0; e < edits; e++) {
        uint32_t op = task_rng_below(r, 5);
        if (op == 0 && len > 0) { /* replace a byte */
            buf[task_rng_below(r, (uint32_t)len)] = (char)task_rng_below(r, 256);
        } else if (op == 1 && len < BUF_LEN) { /* insert an answer character */
            size_t at = task_rng_below(r, (uint32_t)len + 1);
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = alphabet[task_rng_below(r, sizeof alphabet - 1)];
            len++;
        } else if (op == 2 && len > 0) { /* delete a byte */
            size_t at = task_rng_below(r, (uint32_t)len);
            memmove(buf + at, buf + at + 1, len - at - 1);
            len--;
        } else if (op == 3 && len > 0) { /* truncate */
            len = task_rng_below(r, (uint32_t)len);
        } else if (len > 0 && 2 * len <= BUF_LEN) { /* repeat the whole answer */
            memcpy(buf + len, buf, len);
            len *= 2;
        }
    }
    return len;
}

static int feedback_ok(const char *fb, size_t cap) { return memchr(fb, 0, cap) != NULL; }

static void fuzz_domain(const task_domain *d) {
    /* instances with default, smallest and largest knobs */
    task_instance inst[9];
    char why[160];
    for (int i = 0; i < 9; i++) {
        int32_t k[TASK_MAX_KNOBS];
        task_knobs_default(d, k);
        for (int j = 0; j < d->n_knobs; j++)
            if (i % 3 == 1) k[j] = d->knobs[j].min;
            else if (i % 3 == 2) k[j] = d->knobs[j].max;
        if (task_draw(d, k, TASK_SPLIT_TRAIN, 99, (uint64_t)i, &inst[i], why, sizeof why)) {
            CHECK(0, "%s", why);
            return;
        }
    }
    task_rng r = task_rng_seeded(0xF022);
    int out_of_range = 0, bad_feedback = 0, zero = 0, one = 0, partial = 0, small_cap_bad = 0;
    char buf[BUF_LEN];
    for (int t = 0; t < INPUTS_PER_DOMAIN; t++) {
        const task_instance *in = &inst[task_rng_below(&r, 9)];
        size_t len = random_input(&r, buf, d, in);
        char *exact = malloc(len ? len : 1); /* no byte after the input to lean on */
        memcpy(exact, buf, len);
        char fb[TASK_FEEDBACK_CAP];
        memset(fb, 'Z', sizeof fb);
        float s = d->score(in, exact, len, fb, sizeof fb);
        if (!(s >= 0.0f && s <= 1.0f)) out_of_range++;
        if (!feedback_ok(fb, sizeof fb) || fb[0] == 0) bad_feedback++;
        zero += s == 0.0f;
        one += s == 1.0f;
        partial += s > 0.0f && s < 1.0f;
        if (t % 16 == 0) { /* a buffer too small for most messages: -1 or a reward, never a crash */
            size_t cap = 1 + task_rng_below(&r, 8);
            char small[8];
            float s2 = d->score(in, exact, len, small, cap);
            if (!((s2 == -1.0f && small[0] == 0) || (s2 == s && feedback_ok(small, cap))))
                small_cap_bad++;
        }
        free(exact);
    }
    printf("%s fuzz: %d inputs, reward 0: %d, 1: %d, partial: %d\n", d->name, INPUTS_PER_DOMAIN, zero,
           one, partial);
    CHECK(out_of_range == 0, "%s: %d rewards outside [0,1]", d->name, out_of_range);
    CHECK(bad_feedback == 0, "%s: %d feedback strings missing or unterminated", d->name, bad_feedback);
    CHECK(small_cap_bad == 0, "%s: %d small-buffer calls misbehaved", d->name, small_cap_bad);
    /* the inputs reached the verifier's interesting branches, not only the reject path */
    CHECK(zero > 1000 && one > 1000, "%s: zero %d one %d", d->name, zero, one);
    if (d->id != TASK_DOMAIN_ARITH) CHECK(partial > 1000, "%s: partial %d", d->name, partial);
}

/* Pathological long inputs: deep nesting, long digit runs, long operator chains. */
static void fuzz_long_inputs(void) {
    enum { N = 200000 };
    char *s = malloc(N);
    expr_result e;
    memset(s, '(', N);
    expr_parse(s, N, &e);
    CHECK(e.status == EXPR_SYNTAX, "200k '(' is a syntax error, not a stack overflow");
    memset(s, '9', N);
    expr_parse(s, N, &e);
    CHECK(e.status == EXPR_OVERFLOW && e.n_numbers == 1, "a 200k-digit number overflows");
    for (int i = 0; i < N; i++) s[i] = i % 2 ? '+' : '1';
    expr_parse(s, N - 1, &e);
    CHECK(e.status == EXPR_OK && e.value == N / 2 && e.n_numbers == N / 2, "1+1+...+1 = %lld",
          (long long)e.value);
    for (int i = 0; i < task_domain_count(); i++) {
        const task_domain *d = task_domain_at(i);
        task_instance in;
        int32_t k[TASK_MAX_KNOBS];
        char why[160], fb[TASK_FEEDBACK_CAP];
        task_knobs_default(d, k);
        task_draw(d, k, TASK_SPLIT_TRAIN, 1, 1, &in, why, sizeof why);
        memset(s, '(', N);
        float a = d->score(&in, s, N, fb, sizeof fb);
        memset(s, '1', N);
        float b = d->score(&in, s, N, fb, sizeof fb);
        for (int j = 0; j < N; j++) s[j] = j % 2 ? ' ' : '1';
        float c = d->score(&in, s, N, fb, sizeof fb);
        CHECK(a >= 0 && a <= 1 && b >= 0 && b <= 1 && c >= 0 && c <= 1, "%s long inputs: %f %f %f",
              d->name, a, b, c);
    }
    free(s);
}

/* ledger_execute from random valid states (2..5 accounts, balances up to the limit) with random
 * results buffers: a known return code; a malformed, failed-to-fit or invalid call leaves the state
 * alone; a run keeps the state valid and reports as many failures as its results say "error". */
static void fuzz_ledger_execute(void) {
    const task_domain *d = &task_ledger;
    task_instance inst;
    int32_t k[TASK_MAX_KNOBS];
    char why[160], buf[BUF_LEN], results[LEDGER_RESULT_CAP + 8];
    task_knobs_default(d, k);
    k[LEDGER_KNOB_TOOLS] = 3;
    if (task_draw(d, k, TASK_SPLIT_TRAIN, 7, 0, &inst, why, sizeof why)) {
        CHECK(0, "%s", why);
        return;
    }
    task_rng r = task_rng_seeded(0x1ED6E2);
    int bad = 0, ran = 0, malformed = 0, short_buf = 0;
    for (int t = 0; t < 100000; t++) {
        ledger_state s0 = {.n = 2 + (int)task_rng_below(&r, LEDGER_MAX_ACCOUNTS - 1)}, s;
        for (int i = 0; i < s0.n; i++)
            s0.balance[i] = task_rng_below(&r, 4) ? (int)task_rng_below(&r, 30) : LEDGER_MAX_BALANCE - (int)task_rng_below(&r, 5);
        size_t len = random_input(&r, buf, d, &inst);
        char *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        size_t cap = task_rng_below(&r, 4) ? sizeof results : task_rng_below(&r, 40);
        memset(results, 'Z', sizeof results);
        s = s0;
        int rc = ledger_execute(&s, exact, len, results, cap);
        int unchanged = memcmp(&s, &s0, sizeof s) == 0;
        int terminated = cap == 0 || memchr(results, 0, cap) != NULL;
        if (rc == LEDGER_ERR_MALFORMED) {
            malformed++;
            bad += !unchanged || !terminated || strncmp(results, "error: ", 7) != 0;
        } else if (rc == TASK_ERR_FIT) {
            short_buf++;
            bad += !unchanged || (cap > 0 && results[0] != 0) || cap >= LEDGER_RESULT_CAP;
        } else if (rc >= 0 && rc <= LEDGER_MAX_CALLS) {
            ran++;
            int errors = 0;
            for (const char *p = results; (p = strstr(p, "error: ")) != NULL; p++) errors++;
            bad += !terminated || !ledger_state_valid(&s) || errors != rc;
        } else {
            bad++;
        }
        free(exact);
    }
    printf("ledger_execute fuzz: ran %d, malformed %d, results too short %d\n", ran, malformed, short_buf);
    CHECK(bad == 0, "ledger_execute: %d runs broke its contract", bad);
    CHECK(ran > 5000 && malformed > 10000 && short_buf > 1000, "ran %d malformed %d short %d", ran, malformed, short_buf);
}

int main(void) {
    for (int i = 0; i < task_domain_count(); i++) fuzz_domain(task_domain_at(i));
    fuzz_long_inputs();
    fuzz_ledger_execute();
    return test_finish("test_tasks_fuzz");
}
