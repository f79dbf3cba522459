/* arith: integer expressions over + - * of adjustable size and operand range; the answer is the
 * value as a decimal integer; reward 1 if it is exactly right, else 0 (the math analog). */
#ifndef EXITRL_TASKS_ARITH_H
#define EXITRL_TASKS_ARITH_H
#include "tasks/expr.h"
#include "tasks/task.h"

enum { ARITH_KNOB_OPS = 0, ARITH_KNOB_MAX = 1 };
/* Every intermediate value stays within +-ARITH_VALUE_BOUND, so answers have at most 7 chars. */
#define ARITH_VALUE_BOUND 1000000

typedef struct {
    expr_tree tree;
    int root;
    int64_t answer;
} arith_problem;

/* The problem of an instance. Returns 0, or -1 if the instance is not a valid arith instance. */
int arith_generate(const task_instance *inst, arith_problem *p);
/* Reward of answer[0..len): 1 if it reads as the integer p->answer (optional '-', surrounding
 * whitespace allowed), else 0. Feedback: "correct", "incorrect" or "not an integer". Returns -1
 * if feedback does not fit in feedback_cap. */
float arith_score(const arith_problem *p, const char *answer, size_t len, char *feedback,
                  size_t feedback_cap);
#endif
