/* ledger: request "a=5 b=12 c=0 | deposit 5 to a", answer "add a 5" (the contract is in ledger.h). */
#include "tasks/ledger.h"

#include <stdio.h>
#include <string.h>

#include "tasks/scan.h"

enum { INIT_MAX = 20, AMOUNT_MAX = 20,
       PART_CAP = 29 /* any part's text with any int amount fits: two joined by " and " fit a request */ };
/* Request kinds; a two-part request is two single-call parts joined by " and ". */
enum { K_DEPOSIT, K_WITHDRAW, K_BALANCE, K_SEND, K_SEND_ALL, K_TWO_PART, N_KINDS };

static int min_int(int a, int b) { return a < b ? a : b; }

/* ---- state and calls ---- */

int ledger_state_valid(const ledger_state *s) {
    if (!s || s->n < 2 || s->n > LEDGER_MAX_ACCOUNTS) return 0;
    for (int i = 0; i < LEDGER_MAX_ACCOUNTS; i++) {
        if (i >= s->n ? s->balance[i] != 0 : s->balance[i] < 0 || s->balance[i] > LEDGER_MAX_BALANCE)
            return 0;
    }
    return 1;
}

static int same_state(const ledger_state *a, const ledger_state *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->balance[i] != b->balance[i]) return 0;
    return 1;
}

static int same_call(const ledger_call *a, const ledger_call *b) {
    return a->tool == b->tool && a->x == b->x && a->y == b->y && a->amount == b->amount;
}

/* Whether c satisfies the syntax (what ledger_parse can produce). */
static int call_syntax_ok(const ledger_call *c) {
    int amount_ok = c->amount >= 1 && c->amount <= LEDGER_MAX_AMOUNT;
    if (c->x < 0 || c->x >= 26) return 0;
    switch (c->tool) {
    case LEDGER_ADD:
    case LEDGER_SUB: return c->y == -1 && amount_ok;
    case LEDGER_MOV: return c->y >= 0 && c->y < 26 && amount_ok;
    case LEDGER_GET: return c->y == -1 && c->amount == 0;
    default: return 0;
    }
}

int ledger_apply(ledger_state *s, const ledger_call *c) {
    if (!s || !c || !ledger_state_valid(s) || !call_syntax_ok(c)) return TASK_ERR_ARG;
    if (c->x >= s->n || (c->tool == LEDGER_MOV && c->y >= s->n)) return LEDGER_E_ACCOUNT;
    int *x = &s->balance[c->x];
    switch (c->tool) {
    case LEDGER_ADD:
        if (*x > LEDGER_MAX_BALANCE - c->amount) return LEDGER_E_LIMIT;
        *x += c->amount;
        return LEDGER_CALL_OK;
    case LEDGER_SUB:
        if (*x < c->amount) return LEDGER_E_FUNDS;
        *x -= c->amount;
        return LEDGER_CALL_OK;
    case LEDGER_MOV: {
        if (c->x == c->y) return LEDGER_E_SAME;
        int *y = &s->balance[c->y];
        if (*x < c->amount) return LEDGER_E_FUNDS;
        if (*y > LEDGER_MAX_BALANCE - c->amount) return LEDGER_E_LIMIT;
        *x -= c->amount;
        *y += c->amount;
        return LEDGER_CALL_OK;
    }
    default: return LEDGER_CALL_OK; /* get */
    }
}

/* snprintf into buf[cap] that reports a short buffer: the length, or TASK_ERR_FIT with buf "". */
static int put(char *buf, size_t cap, int n) {
    if (n < 0 || (size_t)n >= cap) {
        if (cap) buf[0] = 0;
        return TASK_ERR_FIT;
    }
    return n;
}

int ledger_write_result(const ledger_state *s, const ledger_call *c, int err, char *buf, size_t cap) {
    if (!buf || !ledger_state_valid(s) || !call_syntax_ok(c) || err < LEDGER_CALL_OK || err > LEDGER_E_LIMIT ||
        (err == LEDGER_CALL_OK && (c->x >= s->n || (c->tool == LEDGER_MOV && c->y >= s->n))))
        return TASK_ERR_ARG;
    char x = (char)('a' + c->x), y = (char)('a' + c->y);
    switch (err) {
    case LEDGER_CALL_OK:
        if (c->tool == LEDGER_MOV)
            return put(buf, cap, snprintf(buf, cap, "%c=%d %c=%d", x, s->balance[c->x], y, s->balance[c->y]));
        return put(buf, cap, snprintf(buf, cap, "%c=%d", x, s->balance[c->x]));
    case LEDGER_E_ACCOUNT:
        return put(buf, cap, snprintf(buf, cap, "error: unknown account %c", c->x >= s->n ? x : y));
    case LEDGER_E_FUNDS: return put(buf, cap, snprintf(buf, cap, "error: insufficient funds in %c", x));
    case LEDGER_E_SAME: return put(buf, cap, snprintf(buf, cap, "error: same account %c", x));
    default: return put(buf, cap, snprintf(buf, cap, "error: balance limit on %c", c->tool == LEDGER_MOV ? y : x));
    }
}

int ledger_write_state(const ledger_state *s, char *buf, size_t cap) {
    if (!ledger_state_valid(s) || !buf) return TASK_ERR_ARG;
    size_t len = 0;
    for (int i = 0; i < s->n; i++) {
        int k = put(buf + len, cap - len, snprintf(buf + len, cap - len, i ? " %c=%d" : "%c=%d", 'a' + i, s->balance[i]));
        if (k < 0) {
            if (cap) buf[0] = 0;
            return TASK_ERR_FIT;
        }
        len += (size_t)k;
    }
    return (int)len;
}

int ledger_write_calls(const ledger_call *calls, int n, char *buf, size_t cap) {
    if (n < 0 || n > LEDGER_MAX_CALLS || (n > 0 && !calls) || !buf) return TASK_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (!call_syntax_ok(&calls[i])) return TASK_ERR_ARG;
    if (cap == 0) return TASK_ERR_FIT;
    static const char *const names[] = {"", "add", "sub", "mov", "get"};
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        const ledger_call *c = &calls[i];
        const char *sep = i ? "; " : "";
        int k = c->tool == LEDGER_MOV ? snprintf(buf + len, cap - len, "%s%s %c %c %d", sep, names[c->tool], 'a' + c->x, 'a' + c->y, c->amount)
                : c->tool == LEDGER_GET ? snprintf(buf + len, cap - len, "%s%s %c", sep, names[c->tool], 'a' + c->x)
                                        : snprintf(buf + len, cap - len, "%s%s %c %d", sep, names[c->tool], 'a' + c->x, c->amount);
        if (put(buf + len, cap - len, k) < 0) {
            buf[0] = 0;
            return TASK_ERR_FIT;
        }
        len += (size_t)k;
    }
    return (int)len;
}

/* ---- parsing ---- */

typedef struct {
    size_t start, len;
} token;

static int is_tool(const char *s, const token *t, const char *name) {
    return t->len == 3 && memcmp(s + t->start, name, 3) == 0;
}

/* A single lowercase letter: its index, else -1. */
static int read_account(const char *s, const token *t) {
    if (t->len != 1 || s[t->start] < 'a' || s[t->start] > 'z') return -1;
    return s[t->start] - 'a';
}

/* 1..999 without sign or leading zero: its value, else -1. */
static int read_amount(const char *s, const token *t) {
    if (t->len < 1 || t->len > 3 || s[t->start] == '0') return -1;
    int v = 0;
    for (size_t i = 0; i < t->len; i++) {
        char c = s[t->start + i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

/* The parser behind ledger_parse; why receives the reason (LEDGER_WHY_CAP bytes) when malformed. */
static int parse_calls(const char *s, size_t len, ledger_call *calls, int cap, int *n, char *why) {
    int limit = min_int(cap, LEDGER_MAX_CALLS), count = 0;
    size_t pos = 0;
    scan_skip_space(s, len, &pos);
    if (pos == len) {
        snprintf(why, LEDGER_WHY_CAP, "no calls");
        return LEDGER_ERR_MALFORMED;
    }
    for (;;) {
        int k = count + 1;
        if (count == limit) {
            snprintf(why, LEDGER_WHY_CAP, "too many calls");
            return LEDGER_ERR_MALFORMED;
        }
        /* the call's tokens: maximal runs of bytes that are neither whitespace nor ';' */
        token tok[4];
        int ntok = 0;
        for (;;) {
            scan_skip_space(s, len, &pos);
            if (pos == len || s[pos] == ';') break;
            size_t start = pos;
            while (pos < len && s[pos] != ';' && !scan_is_space(s[pos])) pos++;
            if (ntok < 4) tok[ntok] = (token){start, pos - start};
            if (ntok < 5) ntok++;
        }
        if (ntok == 0) {
            snprintf(why, LEDGER_WHY_CAP, "call %d: empty", k);
            return LEDGER_ERR_MALFORMED;
        }
        ledger_call c = {0, 0, -1, 0};
        int args;
        if (is_tool(s, &tok[0], "add")) c.tool = LEDGER_ADD, args = 2;
        else if (is_tool(s, &tok[0], "sub")) c.tool = LEDGER_SUB, args = 2;
        else if (is_tool(s, &tok[0], "mov")) c.tool = LEDGER_MOV, args = 3;
        else if (is_tool(s, &tok[0], "get")) c.tool = LEDGER_GET, args = 1;
        else {
            snprintf(why, LEDGER_WHY_CAP, "call %d: unknown tool", k);
            return LEDGER_ERR_MALFORMED;
        }
        if (ntok != 1 + args) {
            snprintf(why, LEDGER_WHY_CAP, "call %d: wrong argument count", k);
            return LEDGER_ERR_MALFORMED;
        }
        c.x = read_account(s, &tok[1]);
        if (c.tool == LEDGER_MOV) c.y = read_account(s, &tok[2]);
        if (c.x < 0 || (c.tool == LEDGER_MOV && c.y < 0)) {
            snprintf(why, LEDGER_WHY_CAP, "call %d: bad account", k);
            return LEDGER_ERR_MALFORMED;
        }
        if (c.tool != LEDGER_GET && (c.amount = read_amount(s, &tok[args])) < 0) {
            snprintf(why, LEDGER_WHY_CAP, "call %d: bad amount", k);
            return LEDGER_ERR_MALFORMED;
        }
        calls[count++] = c;
        if (pos == len) break;
        pos++; /* the ';' */
    }
    *n = count;
    return 0;
}

int ledger_parse(const char *text, size_t len, ledger_call *calls, int cap, int *n, char *why,
                 size_t why_cap) {
    if ((!text && len) || !calls || !n || cap < 1) return TASK_ERR_ARG;
    if (why && why_cap < LEDGER_WHY_CAP) {
        if (why_cap) why[0] = 0;
        return TASK_ERR_FIT;
    }
    char reason[LEDGER_WHY_CAP];
    int rc = parse_calls(text, len, calls, cap, n, reason);
    if (why) memcpy(why, rc ? reason : "", rc ? strlen(reason) + 1 : 1);
    return rc;
}

/* ---- execution ---- */

/* A response run from a state: its calls, each call's outcome and result text, the state after. */
typedef struct {
    int malformed;
    char why[LEDGER_WHY_CAP]; /* the syntax reason when malformed */
    int n;                    /* calls (0 when malformed) */
    ledger_call calls[LEDGER_MAX_CALLS];
    int err[LEDGER_MAX_CALLS];
    int failed;               /* calls whose outcome is not LEDGER_CALL_OK */
    ledger_state after;
} run_record;

/* Runs calls[0..n) from a valid state. */
static void run_calls(const ledger_state *before, const ledger_call *calls, int n, run_record *rr) {
    rr->malformed = 0;
    rr->why[0] = 0;
    rr->n = n;
    rr->failed = 0;
    rr->after = *before;
    for (int i = 0; i < n; i++) {
        rr->calls[i] = calls[i];
        rr->err[i] = ledger_apply(&rr->after, &calls[i]);
        rr->failed += rr->err[i] != LEDGER_CALL_OK;
    }
}

static void run_text(const ledger_state *before, const char *text, size_t len, run_record *rr) {
    ledger_call calls[LEDGER_MAX_CALLS];
    int n = 0;
    if (parse_calls(text, len, calls, LEDGER_MAX_CALLS, &n, rr->why)) {
        rr->malformed = 1;
        rr->n = rr->failed = 0;
        rr->after = *before;
        return;
    }
    run_calls(before, calls, n, rr);
}

/* The turn's results text of a run from before. Returns its length or TASK_ERR_FIT (buf ""). */
static int write_results(const ledger_state *before, const run_record *rr, char *buf, size_t cap) {
    if (cap == 0) return TASK_ERR_FIT;
    if (rr->malformed) return put(buf, cap, snprintf(buf, cap, "error: %s", rr->why));
    ledger_state s = *before;
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < rr->n; i++) {
        char one[LEDGER_CALL_RESULT_CAP] = "";
        ledger_apply(&s, &rr->calls[i]); /* replays the run: the same outcome as rr->err[i] */
        ledger_write_result(&s, &rr->calls[i], rr->err[i], one, sizeof one);
        if (put(buf + len, cap - len, snprintf(buf + len, cap - len, "%s%s", i ? "; " : "", one)) < 0) {
            buf[0] = 0;
            return TASK_ERR_FIT;
        }
        len += strlen(buf + len);
    }
    return (int)len;
}

int ledger_execute(ledger_state *s, const char *resp, size_t len, char *results, size_t cap) {
    if (!ledger_state_valid(s) || (!resp && len)) return TASK_ERR_ARG;
    run_record rr;
    run_text(s, resp, len, &rr);
    if (results && write_results(s, &rr, results, cap) < 0) return TASK_ERR_FIT;
    if (rr.malformed) return LEDGER_ERR_MALFORMED;
    *s = rr.after;
    return rr.failed;
}

/* ---- reward and feedback ---- */

/* How many of the turn's ground-truth calls appear among calls[0..n), each call matched once. */
static int matched_calls(const ledger_turn *gt, const ledger_call *calls, int n) {
    int used[LEDGER_MAX_CALLS] = {0}, matched = 0;
    for (int j = 0; j < gt->n_calls; j++)
        for (int i = 0; i < n; i++)
            if (!used[i] && same_call(&gt->calls[j], &calls[i])) {
                used[i] = 1;
                matched++;
                break;
            }
    return matched;
}

static float reward_of(const ledger_turn *gt, const run_record *rr, int graded) {
    if (rr->malformed) return 0.0f;
    int matched = matched_calls(gt, rr->calls, rr->n), state_ok = same_state(&rr->after, &gt->after);
    if (rr->failed == 0 && matched == gt->n_calls && state_ok) return 1.0f;
    if (!graded) return 0.0f;
    return 0.1f + 0.2f * (rr->failed == 0) + 0.3f * (float)matched / (float)gt->n_calls + 0.3f * state_ok;
}

static int write_feedback(const ledger_turn *gt, const ledger_state *before, const run_record *rr,
                          char *fb, size_t cap) {
    if (rr->malformed) return task_write_feedback(fb, cap, "malformed");
    if (rr->failed) { /* the first failing call's reason */
        ledger_state s = *before;
        for (int i = 0; i < rr->n; i++) {
            ledger_apply(&s, &rr->calls[i]);
            if (rr->err[i] == LEDGER_CALL_OK) continue;
            char one[LEDGER_CALL_RESULT_CAP] = "";
            ledger_write_result(&s, &rr->calls[i], rr->err[i], one, sizeof one);
            return task_write_feedback(fb, cap, "%s", one);
        }
    }
    if (!same_state(&rr->after, &gt->after)) {
        char st[LEDGER_STATE_CAP];
        ledger_write_state(&rr->after, st, sizeof st);
        return task_write_feedback(fb, cap, "wrong: %s", st);
    }
    if (matched_calls(gt, rr->calls, rr->n) < gt->n_calls) return task_write_feedback(fb, cap, "missing a requested call");
    return task_write_feedback(fb, cap, "correct");
}

const ledger_state *ledger_state_before(const ledger_episode *ep, int t) {
    if (!ep || t < 0 || t >= ep->n_turns || ep->n_turns > LEDGER_MAX_TURNS) return NULL;
    return t == 0 ? &ep->init : &ep->turn[t - 1].after;
}

/* Turn t of ep, when it is one ledger_generate could have made the shape of (a valid state before
 * it, 1..LEDGER_MAX_TURN_CALLS ground-truth calls in the syntax, a valid state after); else NULL. */
static const ledger_turn *valid_turn(const ledger_episode *ep, int t) {
    const ledger_state *before = ledger_state_before(ep, t);
    if (!before || !ledger_state_valid(before) || before->n != ep->init.n) return NULL;
    const ledger_turn *gt = &ep->turn[t];
    if (gt->n_calls < 1 || gt->n_calls > LEDGER_MAX_TURN_CALLS || !ledger_state_valid(&gt->after) ||
        gt->after.n != before->n || !memchr(gt->request, 0, sizeof gt->request))
        return NULL;
    for (int i = 0; i < gt->n_calls; i++)
        if (!call_syntax_ok(&gt->calls[i])) return NULL;
    return gt;
}

float ledger_turn_score(const ledger_episode *ep, int t, const ledger_state *before, const char *resp,
                        size_t len, int graded, ledger_state *after, char *results, size_t results_cap,
                        char *feedback, size_t feedback_cap) {
    if (feedback && feedback_cap) feedback[0] = 0;
    if (results && results_cap) results[0] = 0;
    const ledger_turn *gt = valid_turn(ep, t);
    if (!gt || (graded != LEDGER_REWARD_BINARY && graded != LEDGER_REWARD_GRADED) || (!resp && len)) return -1.0f;
    if (!before) before = ledger_state_before(ep, t);
    if (!ledger_state_valid(before) || before->n != ep->init.n) return -1.0f;
    run_record rr;
    run_text(before, resp, len, &rr);
    if (results && write_results(before, &rr, results, results_cap) < 0) return -1.0f;
    if (write_feedback(gt, before, &rr, feedback, feedback_cap)) {
        if (results && results_cap) results[0] = 0;
        return -1.0f;
    }
    if (after) *after = rr.after;
    return reward_of(gt, &rr, graded);
}

/* ---- episodes ---- */

/* The accounts whose balance is in [lo, hi], into idx; returns how many. */
static int accounts_with(const ledger_state *s, int lo, int hi, int idx[LEDGER_MAX_ACCOUNTS]) {
    int m = 0;
    for (int i = 0; i < s->n; i++)
        if (s->balance[i] >= lo && s->balance[i] <= hi) idx[m++] = i;
    return m;
}

static int feasible(const ledger_state *s, int kind) {
    int idx[LEDGER_MAX_ACCOUNTS];
    if (kind == K_WITHDRAW || kind == K_SEND) return accounts_with(s, 1, LEDGER_MAX_BALANCE, idx) > 0;
    if (kind == K_SEND_ALL) return accounts_with(s, 1, LEDGER_MAX_AMOUNT, idx) > 0;
    return 1;
}

/* A kind drawn uniformly among kinds[0..n) that are feasible in s (deposit always is). */
static int draw_kind(task_rng *r, const ledger_state *s, const int *kinds, int n) {
    int ok[N_KINDS], m = 0;
    for (int i = 0; i < n; i++)
        if (feasible(s, kinds[i])) ok[m++] = kinds[i];
    return ok[task_rng_below(r, (uint32_t)m)];
}

/* A single-call request of a feasible kind, drawn in s and applied to it: its call and its text. */
static void draw_part(task_rng *r, ledger_state *s, int kind, ledger_call *c, char *text, size_t cap) {
    int idx[LEDGER_MAX_ACCOUNTS] = {0};
    int m = kind == K_SEND_ALL ? accounts_with(s, 1, LEDGER_MAX_AMOUNT, idx) : accounts_with(s, 1, LEDGER_MAX_BALANCE, idx);
    int x = kind == K_DEPOSIT || kind == K_BALANCE ? (int)task_rng_below(r, (uint32_t)s->n)
                                                   : idx[task_rng_below(r, (uint32_t)m)];
    int y = -1;
    if (kind == K_SEND || kind == K_SEND_ALL) {
        y = (int)task_rng_below(r, (uint32_t)s->n - 1);
        if (y >= x) y++;
    }
    char cx = (char)('a' + x), cy = (char)('a' + y);
    switch (kind) {
    case K_DEPOSIT:
        *c = (ledger_call){LEDGER_ADD, x, -1, (int)task_rng_range(r, 1, AMOUNT_MAX)};
        snprintf(text, cap, "deposit %d to %c", c->amount, cx);
        break;
    case K_WITHDRAW:
        *c = (ledger_call){LEDGER_SUB, x, -1, (int)task_rng_range(r, 1, min_int(s->balance[x], AMOUNT_MAX))};
        snprintf(text, cap, "withdraw %d from %c", c->amount, cx);
        break;
    case K_BALANCE:
        *c = (ledger_call){LEDGER_GET, x, -1, 0};
        snprintf(text, cap, "balance of %c?", cx);
        break;
    case K_SEND:
        *c = (ledger_call){LEDGER_MOV, x, y, (int)task_rng_range(r, 1, min_int(s->balance[x], AMOUNT_MAX))};
        snprintf(text, cap, "send %d from %c to %c", c->amount, cx, cy);
        break;
    default: /* K_SEND_ALL */
        *c = (ledger_call){LEDGER_MOV, x, y, s->balance[x]};
        snprintf(text, cap, "send all of %c to %c", cx, cy);
        break;
    }
    ledger_apply(s, c); /* feasible by construction: never fails */
}

/* The first min(turns, limit) turns of the instance's episode (each turn depends only on those
 * before it, so turn 0 is the same whatever the limit). Returns 0 or -1 (invalid instance). */
static int generate(const task_instance *inst, ledger_episode *ep, int limit) {
    if (!inst || inst->domain != TASK_DOMAIN_LEDGER || task_knobs_check(&task_ledger, inst->knobs, NULL, 0))
        return -1;
    static const int level_kinds[] = {K_DEPOSIT, K_WITHDRAW, K_BALANCE, K_SEND, K_SEND_ALL, K_TWO_PART};
    static const int n_level_kinds[] = {0, 3, 4, 6};
    static const int part_kinds[] = {K_DEPOSIT, K_WITHDRAW, K_SEND, K_SEND_ALL};
    int level = inst->knobs[LEDGER_KNOB_TOOLS];
    task_rng r = task_rng_seeded(task_mix64(inst->seed));
    ep->n_turns = min_int(inst->knobs[LEDGER_KNOB_TURNS], limit);
    memset(&ep->init, 0, sizeof ep->init);
    ep->init.n = inst->knobs[LEDGER_KNOB_ACCOUNTS];
    for (int i = 0; i < ep->init.n; i++) ep->init.balance[i] = (int)task_rng_range(&r, 0, INIT_MAX);
    ledger_state s = ep->init;
    for (int t = 0; t < ep->n_turns; t++) {
        ledger_turn *turn = &ep->turn[t];
        memset(turn, 0, sizeof *turn);
        int kind = draw_kind(&r, &s, level_kinds, n_level_kinds[level]);
        if (kind == K_TWO_PART) {
            char a[PART_CAP], b[PART_CAP];
            draw_part(&r, &s, draw_kind(&r, &s, part_kinds, 4), &turn->calls[0], a, sizeof a);
            draw_part(&r, &s, draw_kind(&r, &s, part_kinds, 4), &turn->calls[1], b, sizeof b);
            snprintf(turn->request, sizeof turn->request, "%s and %s", a, b);
            turn->n_calls = 2;
        } else {
            draw_part(&r, &s, kind, &turn->calls[0], turn->request, sizeof turn->request);
            turn->n_calls = 1;
        }
        turn->after = s;
    }
    return 0;
}

int ledger_generate(const task_instance *inst, ledger_episode *ep) {
    if (!ep) return -1;
    memset(ep, 0, sizeof *ep);
    return generate(inst, ep, LEDGER_MAX_TURNS);
}

int ledger_render_turn(const ledger_episode *ep, int t, char *buf, size_t cap) {
    if (!valid_turn(ep, t) || !buf) return TASK_ERR_ARG;
    if (t > 0) return put(buf, cap, snprintf(buf, cap, "%s", ep->turn[t].request));
    char st[LEDGER_STATE_CAP];
    ledger_write_state(&ep->init, st, sizeof st);
    return put(buf, cap, snprintf(buf, cap, "%s | %s", st, ep->turn[0].request));
}

/* ---- the teacher ---- */

float ledger_teacher_p_correct(const task_instance *inst) {
    float p = 0.9f - 0.1f * (float)(inst->knobs[LEDGER_KNOB_TOOLS] - 1) -
              0.05f * (float)(inst->knobs[LEDGER_KNOB_ACCOUNTS] - 2);
    return p < 0.3f ? 0.3f : p;
}

/* The wrong answers the teacher makes: one slip in the ground-truth calls. */
enum { SLIP_AMOUNT, SLIP_ACCOUNT, SLIP_SWAP, SLIP_MISSING, SLIP_TOOL, N_SLIPS, MAX_SLIPS = 64 };
typedef struct {
    int type, n;
    ledger_call calls[LEDGER_MAX_TURN_CALLS];
} slip;

static void add_slip(slip *out, int *count, const ledger_turn *gt, int type, int i, ledger_call c) {
    if (*count >= MAX_SLIPS || !call_syntax_ok(&c)) return;
    slip *s = &out[(*count)++];
    s->type = type;
    s->n = gt->n_calls;
    memcpy(s->calls, gt->calls, sizeof s->calls);
    s->calls[i] = c;
}

/* Every one-slip variant of the turn's calls, wrong or not (the caller filters). */
static int list_slips(const ledger_turn *gt, int n_accounts, slip *out) {
    int count = 0;
    for (int i = 0; i < gt->n_calls; i++) {
        const ledger_call g = gt->calls[i];
        ledger_call c;
        if (g.tool != LEDGER_GET)
            for (int d = -3; d <= 3; d++)
                if (d) {
                    c = g;
                    c.amount += d;
                    add_slip(out, &count, gt, SLIP_AMOUNT, i, c);
                }
        for (int a = 0; a < n_accounts; a++) {
            if (a == g.x || a == g.y) continue;
            c = g;
            c.x = a;
            add_slip(out, &count, gt, SLIP_ACCOUNT, i, c);
            if (g.tool == LEDGER_MOV) {
                c = g;
                c.y = a;
                add_slip(out, &count, gt, SLIP_ACCOUNT, i, c);
            }
        }
        if (g.tool == LEDGER_MOV) {
            c = (ledger_call){LEDGER_MOV, g.y, g.x, g.amount};
            add_slip(out, &count, gt, SLIP_SWAP, i, c);
            add_slip(out, &count, gt, SLIP_TOOL, i, (ledger_call){LEDGER_ADD, g.y, -1, g.amount}); /* no debit */
            add_slip(out, &count, gt, SLIP_TOOL, i, (ledger_call){LEDGER_SUB, g.x, -1, g.amount}); /* no credit */
        } else if (g.tool != LEDGER_GET) {
            add_slip(out, &count, gt, SLIP_TOOL, i, (ledger_call){g.tool == LEDGER_ADD ? LEDGER_SUB : LEDGER_ADD, g.x, -1, g.amount});
        }
    }
    if (gt->n_calls == 2)
        for (int i = 0; i < 2 && count < MAX_SLIPS; i++) {
            slip *s = &out[count++];
            s->type = SLIP_MISSING;
            s->n = 1;
            s->calls[0] = gt->calls[1 - i];
        }
    return count;
}

static float calls_reward(const ledger_turn *gt, const ledger_state *before, const ledger_call *calls, int n, int graded) {
    run_record rr;
    run_calls(before, calls, n, &rr);
    return reward_of(gt, &rr, graded);
}

int ledger_teacher_turn(const ledger_episode *ep, int t, task_rng *r, float p_correct, char *buf,
                        size_t cap) {
    const ledger_turn *gt = valid_turn(ep, t);
    if (!gt || !r || !buf) return TASK_ERR_ARG;
    const ledger_state *before = ledger_state_before(ep, t);
    if (task_rng_unit(r) < p_correct) return ledger_write_calls(gt->calls, gt->n_calls, buf, cap);
    /* A slip type drawn uniformly among those that give a wrong answer here, then one of its variants. */
    slip slips[MAX_SLIPS];
    int n = list_slips(gt, before->n, slips), per_type[N_SLIPS] = {0}, wrong = 0;
    for (int i = 0; i < n; i++)
        if (calls_reward(gt, before, slips[i].calls, slips[i].n, LEDGER_REWARD_BINARY) == 0.0f) {
            slips[wrong++] = slips[i];
            per_type[slips[wrong - 1].type]++;
        }
    if (wrong == 0) { /* not reached for generated turns (a wrong amount or account always exists) */
        ledger_call get = {LEDGER_GET, gt->n_calls == 1 && gt->calls[0].tool == LEDGER_GET && gt->calls[0].x == 0, -1, 0};
        return ledger_write_calls(&get, 1, buf, cap);
    }
    int types[N_SLIPS], n_types = 0;
    for (int k = 0; k < N_SLIPS; k++)
        if (per_type[k]) types[n_types++] = k;
    int type = types[task_rng_below(r, (uint32_t)n_types)];
    int pick = (int)task_rng_below(r, (uint32_t)per_type[type]);
    for (int i = 0; i < wrong; i++)
        if (slips[i].type == type && pick-- == 0) return ledger_write_calls(slips[i].calls, slips[i].n, buf, cap);
    return TASK_ERR_ARG; /* not reached */
}

int ledger_teacher_improve(const ledger_episode *ep, int t, const char *prev, size_t prev_len,
                           task_rng *r, float p_correct, char *buf, size_t cap) {
    const ledger_turn *gt = valid_turn(ep, t);
    if (!gt || !r || !buf || (!prev && prev_len)) return TASK_ERR_ARG;
    const ledger_state *before = ledger_state_before(ep, t);
    ledger_call p[LEDGER_MAX_CALLS];
    int n;
    char why[LEDGER_WHY_CAP];
    if (parse_calls(prev, prev_len, p, LEDGER_MAX_CALLS, &n, why)) return ledger_teacher_turn(ep, t, r, p_correct, buf, cap);
    float q0 = calls_reward(gt, before, p, n, LEDGER_REWARD_GRADED);
    if (q0 >= 1.0f) { /* right: keep it byte for byte */
        if (prev_len >= cap) return TASK_ERR_FIT;
        memcpy(buf, prev, prev_len);
        buf[prev_len] = 0;
        return (int)prev_len;
    }
    /* One edit of the call list: replace call i by ground-truth call j, insert ground-truth call j
     * at position i, or drop call i. The best (the first found among equals) and one drawn
     * uniformly from those strictly better than prev (reservoir sampling). */
    ledger_call best[LEDGER_MAX_CALLS], pick[LEDGER_MAX_CALLS], cand[LEDGER_MAX_CALLS];
    int best_n = 0, pick_n = 0, n_better = 0;
    float best_q = q0;
    for (int op = 0; op < 3; op++)
        for (int i = 0; i <= n; i++)
            for (int j = 0; j < (op == 2 ? 1 : gt->n_calls); j++) {
                int m;
                if (op == 0) { /* replace */
                    if (i == n || same_call(&p[i], &gt->calls[j])) continue;
                    memcpy(cand, p, sizeof(ledger_call) * (size_t)n);
                    cand[i] = gt->calls[j];
                    m = n;
                } else if (op == 1) { /* insert */
                    if (n == LEDGER_MAX_CALLS) continue;
                    memcpy(cand, p, sizeof(ledger_call) * (size_t)i);
                    cand[i] = gt->calls[j];
                    memcpy(cand + i + 1, p + i, sizeof(ledger_call) * (size_t)(n - i));
                    m = n + 1;
                } else { /* drop */
                    if (i == n || n == 1) continue;
                    memcpy(cand, p, sizeof(ledger_call) * (size_t)i);
                    memcpy(cand + i, p + i + 1, sizeof(ledger_call) * (size_t)(n - i - 1));
                    m = n - 1;
                }
                float q = calls_reward(gt, before, cand, m, LEDGER_REWARD_GRADED);
                if (!(q > q0)) continue;
                if (q > best_q) {
                    best_q = q;
                    best_n = m;
                    memcpy(best, cand, sizeof(ledger_call) * (size_t)m);
                }
                if (task_rng_below(r, (uint32_t)++n_better) == 0) {
                    pick_n = m;
                    memcpy(pick, cand, sizeof(ledger_call) * (size_t)m);
                }
            }
    if (n_better == 0) return ledger_write_calls(gt->calls, gt->n_calls, buf, cap);
    return task_rng_unit(r) < p_correct ? ledger_write_calls(best, best_n, buf, cap)
                                        : ledger_write_calls(pick, pick_n, buf, cap);
}

/* ---- the single-turn view: the episode's first turn ---- */

static int render_request(const task_instance *inst, char *buf, size_t cap) {
    ledger_episode ep;
    if (generate(inst, &ep, 1)) return TASK_ERR_ARG;
    return ledger_render_turn(&ep, 0, buf, cap);
}

/* The single-turn view scores with the GRADED reward, not the paper's binary one, because task.h's
 * teacher_improve contract (a step strictly better than a well-formed attempt, so that hill-climbing
 * steps compose, as tasks/demos.c and the improve demonstrations rely on) cannot hold under a 0/1
 * reward: there, only the right answer beats a wrong one, and a well-formed attempt would score no
 * more than garbage. The graded reward is 1 exactly when the binary one is, so the share of turns
 * with reward 1 (heldout_solved) is the binary reward's mean. */
static float score(const task_instance *inst, const char *answer, size_t len, char *feedback,
                   size_t feedback_cap) {
    ledger_episode ep;
    if (generate(inst, &ep, 1)) return -1.0f;
    return ledger_turn_score(&ep, 0, NULL, answer, len, LEDGER_REWARD_GRADED, NULL, NULL, 0, feedback, feedback_cap);
}

static int well_formed(const task_instance *inst, const char *answer, size_t len) {
    ledger_episode ep;
    if (generate(inst, &ep, 1)) return -1;
    ledger_call calls[LEDGER_MAX_CALLS];
    int n;
    char why[LEDGER_WHY_CAP];
    return parse_calls(answer, len, calls, LEDGER_MAX_CALLS, &n, why) == 0;
}

static int teacher_answer(const task_instance *inst, task_rng *r, float p_correct, char *buf, size_t cap) {
    ledger_episode ep;
    if (generate(inst, &ep, 1)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = ledger_teacher_p_correct(inst);
    return ledger_teacher_turn(&ep, 0, r, p_correct, buf, cap);
}

static int teacher_improve(const task_instance *inst, const char *prev, size_t prev_len, task_rng *r,
                           float p_correct, char *buf, size_t cap) {
    ledger_episode ep;
    if (generate(inst, &ep, 1)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = ledger_teacher_p_correct(inst);
    return ledger_teacher_improve(&ep, 0, prev, prev_len, r, p_correct, buf, cap);
}

static float teacher_p_correct(const task_instance *inst) { return ledger_teacher_p_correct(inst); }

/* ---- the multi-turn view (task.h task_episode): the state is a ledger_state ---- */
_Static_assert(sizeof(ledger_state) <= TASK_STATE_CAP, "a ledger state fits the task state");
_Static_assert((int)LEDGER_RESULT_CAP <= (int)TASK_RESULTS_CAP, "a ledger turn's results fit the task results");

/* The episode up to turn t (generation is sequential: a shorter episode is a prefix of a longer
 * one), or -1 for an invalid instance or t outside the episode. */
static int episode_to(const task_instance *inst, int t, ledger_episode *ep) {
    if (generate(inst, ep, LEDGER_MAX_TURNS) || t < 0 || t >= ep->n_turns) return -1;
    return 0;
}

static int episode_turns(const task_instance *inst) {
    ledger_episode ep;
    return generate(inst, &ep, 1) ? TASK_ERR_ARG : inst->knobs[LEDGER_KNOB_TURNS];
}

static int episode_initial_state(const task_instance *inst, void *state) {
    ledger_episode ep;
    if (generate(inst, &ep, 1)) return TASK_ERR_ARG;
    memset(state, 0, TASK_STATE_CAP);
    memcpy(state, &ep.init, sizeof ep.init);
    return 0;
}

static int episode_render_turn(const task_instance *inst, int t, char *buf, size_t cap) {
    ledger_episode ep;
    return episode_to(inst, t, &ep) ? TASK_ERR_ARG : ledger_render_turn(&ep, t, buf, cap);
}

/* Graded, as the single-turn view (score, above), so that turn 0 scores the same in both. */
static float episode_score_turn(const task_instance *inst, int t, const void *before, const char *answer, size_t len,
                                void *after, char *results, size_t results_cap, char *feedback, size_t feedback_cap) {
    ledger_episode ep;
    ledger_state b, a;
    if (!before || episode_to(inst, t, &ep)) return -1.0f;
    memcpy(&b, before, sizeof b);
    float q = ledger_turn_score(&ep, t, &b, answer, len, LEDGER_REWARD_GRADED, &a, results, results_cap, feedback,
                                feedback_cap);
    if (q >= 0.0f && after) {
        memset(after, 0, TASK_STATE_CAP);
        memcpy(after, &a, sizeof a);
    }
    return q;
}

static int episode_teacher_turn(const task_instance *inst, int t, task_rng *r, float p_correct, char *buf, size_t cap) {
    ledger_episode ep;
    if (episode_to(inst, t, &ep)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = ledger_teacher_p_correct(inst);
    return ledger_teacher_turn(&ep, t, r, p_correct, buf, cap);
}

static int episode_teacher_improve(const task_instance *inst, int t, const char *prev, size_t prev_len, task_rng *r,
                                   float p_correct, char *buf, size_t cap) {
    ledger_episode ep;
    if (episode_to(inst, t, &ep)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = ledger_teacher_p_correct(inst);
    return ledger_teacher_improve(&ep, t, prev, prev_len, r, p_correct, buf, cap);
}

static const task_episode ledger_episodes = {
    .turns = episode_turns,
    .initial_state = episode_initial_state,
    .render_turn = episode_render_turn,
    .score_turn = episode_score_turn,
    .teacher_turn = episode_teacher_turn,
    .teacher_improve_turn = episode_teacher_improve,
};

const task_domain task_ledger = {
    .name = "ledger",
    .id = TASK_DOMAIN_LEDGER,
    .n_knobs = 3,
    .knobs = {{"accounts", 2, LEDGER_MAX_ACCOUNTS, 3, "accounts a, b, ... (balances start at 0..20)"},
              {"turns", 1, LEDGER_MAX_TURNS, 4, "user requests per episode (the single-turn view uses the first)"},
              {"tools", 1, 3, 2, "request kinds: 1 deposit/withdraw/balance, 2 + send, 3 + send all and two-part"}},
    .render_request = render_request,
    .score = score,
    .teacher_answer = teacher_answer,
    .teacher_improve = teacher_improve,
    .teacher_p_correct = teacher_p_correct,
    .well_formed = well_formed,
    .episode = &ledger_episodes,
};
