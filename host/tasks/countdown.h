/* countdown: reach a target from 2-4 given numbers with + - * and exact /, each number used at most
 * once. Instances are solvable by construction. Graded reward (see countdown_score). */
#ifndef EXITRL_TASKS_COUNTDOWN_H
#define EXITRL_TASKS_COUNTDOWN_H
#include "tasks/expr.h"
#include "tasks/task.h"

enum { COUNTDOWN_KNOB_N = 0, COUNTDOWN_KNOB_MAX = 1, COUNTDOWN_KNOB_TARGET_MAX = 2 };
enum { COUNTDOWN_MAX_NUMBERS = 4 };

typedef struct {
    int n;                                   /* how many numbers are given */
    int64_t numbers[COUNTDOWN_MAX_NUMBERS];  /* ascending (the request's canonical order) */
    int64_t target;                          /* in [1, target_max], never one of the numbers */
    expr_tree solution;                      /* the expression the target was built from */
    int solution_root;
} countdown_problem;

/* The problem of an instance. Returns 0, or -1 if the instance is not a valid countdown instance. */
int countdown_generate(const task_instance *inst, countdown_problem *p);
/* Reward of answer[0..len):
 *   1                                   a valid equation whose value is the target
 *   0.1 + 0.4*max(0, 1-|v-t|/max(t,1))  a valid equation of another value v (t the target)
 *   0.05                                well-formed, but uses a number not given (or more often
 *                                       than given), divides inexactly or by zero, or overflows
 *   0                                   not an expression
 * so any valid equation beats any invalid one and closer values earn more.
 * Feedback (what the attempt lacks, in terms a policy can act on: which way it misses and which
 * given numbers it left out, never a number it may not write): "correct", "too low, unused 7 25",
 * "too high, all used", "numbers not given, unused 3 50", "inexact division", "overflow" or
 * "malformed" (the unused numbers in ascending order, each given number matched at most once).
 * Returns -1 if feedback does not fit in feedback_cap. */
float countdown_score(const countdown_problem *p, const char *answer, size_t len, char *feedback,
                      size_t feedback_cap);
/* The teacher's next attempt after prev[0..prev_len) (any bytes), one edit away where one helps,
 * so that steps compose: prev itself when it is right; else, among prev's one-edit neighbours
 * (a number replaced by a given number, an operator by another, a number dropped with the
 * operator next to it, or a given number joined to the whole attempt by an operator), the best one
 * with probability p_correct and a uniformly drawn strictly better one otherwise; when no
 * neighbour is better (a malformed attempt, a local optimum), the solution with probability
 * p_correct, else a random equation better than prev, else the solution. Never scores below prev.
 * Writes NUL-terminated text into buf[cap]; returns its length, or TASK_ERR_FIT. */
int countdown_improve(const countdown_problem *p, const char *prev, size_t prev_len, task_rng *r,
                      float p_correct, char *buf, size_t cap);
#endif
