/* ledger: a small synthetic multi-turn tool-use environment (the BFCL analog of Jiang et al. 2025).
 * Accounts named a, b, c, ... hold non-negative integer balances; each turn a user asks in short
 * English for deposits, withdrawals, transfers or a balance, and the policy answers with tool calls.
 *
 * Tool calls (the response to a turn): one or more calls separated by ';', whitespace (space, tab,
 * newline, CR) allowed around and between tokens, nothing else:
 *   add X N     X += N                                    result "X=<new>"
 *   sub X N     X -= N       (error if X < N)             result "X=<new>"
 *   mov X Y N   X -= N, Y += N (error if X < N or X == Y) result "X=<new> Y=<new>"
 *   get X       no change                                 result "X=<value>"
 * X, Y are single lowercase letters; N is 1..999 in decimal, no sign, no leading zero.
 * Syntax (checked before anything runs; a response that fails it is "malformed" and runs no call):
 * a known tool, its argument count, each account a single letter a..z, each amount as above, no
 * empty call (";;", a leading or trailing ';'), at least one and at most LEDGER_MAX_CALLS calls.
 * Execution: calls run in order on the state; a call that fails (an account beyond the episode's,
 * insufficient funds, X == Y, or a balance that would pass LEDGER_MAX_BALANCE) changes nothing
 * and the later calls still run. Each call's result is its text above or "error: <reason>"; the
 * results of a turn are joined by "; ".
 *
 * Episodes: a task_instance (domain TASK_DOMAIN_LEDGER) gives, deterministically, the initial
 * balances (0..20 each) and `turns` user requests, each with its ground-truth calls (which never
 * fail, by construction) and the ground-truth state after it. Requests, by `tools` level:
 *   1  "deposit 5 to a" (add a 5), "withdraw 3 from b" (sub b 3), "balance of c?" (get c)
 *   2  and "send 4 from a to c" (mov a c 4)
 *   3  and "send all of a to b" (mov a b <a's balance now>: the policy must track the balances from
 *      the initial state through the earlier turns) and two-part requests "<part> and <part>" (two
 *      calls, in that order), each part a deposit, withdrawal, send or send-all.
 * Amounts are 1..20 (withdrawals and sends at most the balance); send-all only of a balance in
 * 1..999. Balances stay below 5*20 + 60*2*20 = 2500.
 *
 * Reward of a turn (binary, the paper's per-turn reward): 1 when the response parses, no call fails,
 * every ground-truth call appears among the response's calls (a multiset match; extra calls such as
 * a `get` are harmless) and the state after the response equals the ground-truth state after the
 * turn; else 0. Since add/sub/mov commute on the final state, the order of calls matters only
 * through failures (a send before the deposit that funds it fails).
 * Graded variant (LEDGER_REWARD_GRADED): 1 exactly when the binary reward is 1; else 0 for a
 * malformed response and, for a well-formed one,
 *   0.1 + 0.2 [no call failed] + 0.3 (ground-truth calls present / ground-truth calls)
 *       + 0.3 [state after == ground-truth state after]       (at most 0.75 for a wrong turn).
 * Feedback of a turn (says what the attempt lacks, never the calls to write), first that applies:
 *   "malformed"                 the response does not parse
 *   "error: <reason>"           the first failing call's reason, e.g. "error: insufficient funds in a"
 *   "wrong: a=3 b=9 c=4"        the state the attempt produced, when it is not the requested one
 *   "missing a requested call"  the state is right but a ground-truth call is absent (e.g. a `get`)
 *   "correct"
 *
 * The single-turn view (task_ledger, registered as "ledger"): the first turn of the episode.
 * render_request is ledger_render_turn(turn 0), the initial state and the first request, e.g.
 * "a=5 b=12 c=0 | deposit 5 to a"; score is the first turn's GRADED reward (see task_ledger in
 * ledger.c for why) with its feedback; teacher_answer, teacher_improve, teacher_p_correct and
 * well_formed are the first turn's. The train/held-out split (task.c's content hash of the request)
 * therefore partitions episodes by their first turn; the `turns` knob changes nothing there. */
#ifndef EXITRL_TASKS_LEDGER_H
#define EXITRL_TASKS_LEDGER_H
#include <stddef.h>

#include "tasks/task.h"

enum { LEDGER_KNOB_ACCOUNTS = 0, LEDGER_KNOB_TURNS = 1, LEDGER_KNOB_TOOLS = 2 };
enum {
    LEDGER_MAX_ACCOUNTS = 5,
    LEDGER_MAX_TURNS = 60,
    LEDGER_MAX_CALLS = 8,        /* calls one response may make */
    LEDGER_MAX_TURN_CALLS = 2,   /* ground-truth calls of one turn */
    LEDGER_MAX_AMOUNT = 999,
    LEDGER_MAX_BALANCE = 999999, /* a call that would pass it fails ("balance limit") */
    LEDGER_TURN_REQUEST_CAP = 64, /* every request text (without the state) fits, with NUL */
    LEDGER_STATE_CAP = 48,        /* every valid state's text "a=999999 ... e=999999" fits, with NUL */
    LEDGER_WHY_CAP = 40,          /* every syntax reason fits, with NUL */
    LEDGER_CALL_RESULT_CAP = 32,  /* every single call's result text fits, with NUL */
    /* every turn's results text fits, with NUL: LEDGER_MAX_CALLS results joined by "; " */
    LEDGER_RESULT_CAP = LEDGER_MAX_CALLS * (LEDGER_CALL_RESULT_CAP - 1 + 2) - 2 + 1
};
/* Tools (ledger_call.tool). */
enum { LEDGER_ADD = 1, LEDGER_SUB = 2, LEDGER_MOV = 3, LEDGER_GET = 4 };
/* Outcome of one call (ledger_apply). */
enum { LEDGER_CALL_OK = 0, LEDGER_E_ACCOUNT = 1, LEDGER_E_FUNDS = 2, LEDGER_E_SAME = 3,
       LEDGER_E_LIMIT = 4 };
/* Returned by ledger_parse and ledger_execute for text that is not a list of calls (besides
 * TASK_ERR_FIT and TASK_ERR_ARG). */
enum { LEDGER_ERR_MALFORMED = -3 };
/* Reward variants (ledger_turn_score's `graded`). */
enum { LEDGER_REWARD_BINARY = 0, LEDGER_REWARD_GRADED = 1 };

typedef struct {
    int n;                            /* accounts a.. in use, 2..LEDGER_MAX_ACCOUNTS */
    int balance[LEDGER_MAX_ACCOUNTS]; /* 0..LEDGER_MAX_BALANCE; entries from n on are 0 */
} ledger_state;

typedef struct {
    int tool;   /* LEDGER_ADD .. LEDGER_GET */
    int x;      /* account index 0..25 ('a' + x): syntax allows any letter, execution checks < n */
    int y;      /* mov's destination (0..25); -1 for the other tools */
    int amount; /* 1..LEDGER_MAX_AMOUNT for add, sub, mov; 0 for get */
} ledger_call;

typedef struct {
    char request[LEDGER_TURN_REQUEST_CAP]; /* NUL-terminated, e.g. "send 4 from a to c" */
    int n_calls;                           /* 1..LEDGER_MAX_TURN_CALLS */
    ledger_call calls[LEDGER_MAX_TURN_CALLS]; /* the ground truth, in the order asked */
    ledger_state after;                    /* the ground-truth state after the turn */
} ledger_turn;

typedef struct {
    int n_turns;       /* the `turns` knob */
    ledger_state init; /* the state before turn 0 */
    ledger_turn turn[LEDGER_MAX_TURNS];
} ledger_episode;

/* The episode of an instance (fixed-size, no allocation). Returns 0, or -1 if the instance is not a
 * valid ledger instance. */
int ledger_generate(const task_instance *inst, ledger_episode *ep);
/* The ground-truth state before turn t (ep->init for t = 0), or NULL for t outside [0, n_turns). */
const ledger_state *ledger_state_before(const ledger_episode *ep, int t);

/* Parses text[0..len) (any bytes; nothing at or past len is read) into calls[0..cap): returns 0 with
 * *n calls (1..LEDGER_MAX_CALLS; more than cap is LEDGER_ERR_MALFORMED "too many calls"), or
 * LEDGER_ERR_MALFORMED with a reason such as "call 2: unknown tool" in why (when not NULL), or
 * TASK_ERR_FIT when why is not NULL and why_cap < LEDGER_WHY_CAP (nothing parsed), or TASK_ERR_ARG
 * for a NULL text with len > 0, NULL calls or n, or cap < 1. */
int ledger_parse(const char *text, size_t len, ledger_call *calls, int cap, int *n, char *why,
                 size_t why_cap);
/* 1 when s is a valid state (2..LEDGER_MAX_ACCOUNTS accounts, balances in [0, LEDGER_MAX_BALANCE],
 * unused entries 0), else 0. */
int ledger_state_valid(const ledger_state *s);
/* Runs one call on a state: LEDGER_CALL_OK (s updated) or LEDGER_E_* (s unchanged), or
 * TASK_ERR_ARG (s unchanged) for an invalid state or a call outside the syntax. */
int ledger_apply(ledger_state *s, const ledger_call *c);
/* The result text of call c with outcome err (LEDGER_CALL_OK: "a=5", "a=2 c=9" read from the state
 * after the call, s; else "error: insufficient funds in a", "error: unknown account e", "error: same
 * account a", "error: balance limit on a") into buf[cap]. Returns its length, TASK_ERR_FIT (buf "";
 * LEDGER_CALL_RESULT_CAP always suffices) or TASK_ERR_ARG (an invalid state, call or outcome). */
int ledger_write_result(const ledger_state *s, const ledger_call *c, int err, char *buf, size_t cap);
/* Parses resp[0..len) and runs its calls on *s. results (may be NULL: cap is then ignored)
 * receives the turn's results text: for a malformed response "error: <reason>" (e.g. "error: call 1:
 * bad amount"), nothing run. Returns the number of calls that failed (0..LEDGER_MAX_CALLS), or
 * LEDGER_ERR_MALFORMED (s unchanged), TASK_ERR_FIT (results shorter than needed; s unchanged,
 * results ""; LEDGER_RESULT_CAP always suffices) or TASK_ERR_ARG (invalid state). */
int ledger_execute(ledger_state *s, const char *resp, size_t len, char *results, size_t cap);

/* Reward in [0,1] of resp[0..len) (any bytes) as the answer to turn t, executed from *before
 * (NULL: the ground-truth state before the turn; a host loop may pass the state its policy's own
 * earlier turns produced), against the recorded ground truth of turn t (see the rules above;
 * graded = LEDGER_REWARD_BINARY or LEDGER_REWARD_GRADED). Optional outputs (each may be NULL):
 * after receives the state after the response (*before when it is malformed), results the results
 * text (ledger_execute), feedback the feedback (TASK_FEEDBACK_CAP always suffices). Returns -1 for
 * an invalid turn, before or graded, or an output buffer too small (then feedback and results
 * hold ""). A turn is invalid when t is outside [0, n_turns) or the episode does not have the
 * shape ledger_generate gives (valid states, 1..LEDGER_MAX_TURN_CALLS calls in the syntax, a
 * NUL-terminated request); the other functions taking (ep, t) reject such turns with TASK_ERR_ARG. */
float ledger_turn_score(const ledger_episode *ep, int t, const ledger_state *before, const char *resp,
                        size_t len, int graded, ledger_state *after, char *results, size_t results_cap,
                        char *feedback, size_t feedback_cap);

/* The state as "a=5 b=12 c=0" into buf[cap]. Returns its length, TASK_ERR_FIT or TASK_ERR_ARG
 * (invalid state). */
int ledger_write_state(const ledger_state *s, char *buf, size_t cap);
/* Calls in canonical form, "add a 5; mov a c 4" into buf[cap] (n = 0 gives ""). Returns the
 * length, TASK_ERR_FIT, or TASK_ERR_ARG for n outside [0, LEDGER_MAX_CALLS] or a call that does not
 * satisfy the syntax (ledger_parse reads the text back as the same calls). */
int ledger_write_calls(const ledger_call *calls, int n, char *buf, size_t cap);
/* What the policy sees at turn t: for t = 0 the initial state and the request, "a=5 b=12 c=0 |
 * deposit 5 to a"; for later turns the request alone (the host shows the results of earlier turns
 * as it sees fit). Returns the length, TASK_ERR_FIT, or TASK_ERR_ARG for t outside the episode.
 * Turn 0 always fits TASK_REQUEST_CAP, later turns LEDGER_TURN_REQUEST_CAP. */
int ledger_render_turn(const ledger_episode *ep, int t, char *buf, size_t cap);

/* The teacher's default accuracy: 0.9 - 0.1 (tools - 1) - 0.05 (accounts - 2). */
float ledger_teacher_p_correct(const task_instance *inst);
/* A noisy teacher for turn t: with probability p_correct (in [0,1]) the ground-truth calls in
 * canonical form, else a plausible, well-formed wrong answer (one slip: a wrong amount, a wrong
 * account, a transfer's direction swapped, one of two calls missing, or the wrong tool) whose
 * binary reward from the ground-truth state before the turn is 0. Writes NUL-terminated text into
 * buf[cap]; returns its length, TASK_ERR_FIT or TASK_ERR_ARG (t outside the episode). */
int ledger_teacher_turn(const ledger_episode *ep, int t, task_rng *r, float p_correct, char *buf,
                        size_t cap);
/* The teacher's next attempt at turn t after prev[0..prev_len) (any bytes), scored from the
 * ground-truth state before the turn: prev itself when it is right; a fresh ledger_teacher_turn
 * when it is malformed (well-formed, so strictly better under the graded reward); else one edit of
 * prev's calls (a call replaced by a ground-truth call, a ground-truth call inserted, or a call
 * dropped): the best such edit by graded reward with probability p_correct, else one drawn
 * uniformly from those strictly better than prev; when none is better, the ground-truth calls.
 * So a wrong attempt always gets a strictly higher graded reward, and one slip is fixed in one
 * step. Same returns as ledger_teacher_turn. */
int ledger_teacher_improve(const ledger_episode *ep, int t, const char *prev, size_t prev_len,
                           task_rng *r, float p_correct, char *buf, size_t cap);
#endif
