/* knapsack: choose items (weight, value) under a capacity; continuous reward value/optimum (the
 * MLE-bench analog), with the optimum by exact dynamic programming. */
#ifndef EXITRL_TASKS_KNAPSACK_H
#define EXITRL_TASKS_KNAPSACK_H
#include "tasks/task.h"

enum { KNAPSACK_KNOB_N = 0, KNAPSACK_KNOB_MAX_WEIGHT = 1, KNAPSACK_KNOB_MAX_VALUE = 2,
       KNAPSACK_KNOB_CAP_PCT = 3 };
enum { KNAPSACK_MAX_ITEMS = 20, KNAPSACK_MAX_WEIGHT = 50, KNAPSACK_MAX_VALUE = 99,
       /* the largest capacity the generator can produce: 90% of 20 items of weight 50 */
       KNAPSACK_MAX_CAPACITY = KNAPSACK_MAX_ITEMS * KNAPSACK_MAX_WEIGHT * 9 / 10 };

typedef struct {
    int n;                           /* items, indexed 0..n-1 in the request's order */
    int weight[KNAPSACK_MAX_ITEMS];  /* each >= 1 */
    int value[KNAPSACK_MAX_ITEMS];   /* each >= 1 */
    int capacity;                    /* >= the lightest weight and < the total weight */
} knapsack_problem;

/* The problem of an instance. Returns 0, or -1 if the instance is not a valid knapsack instance. */
int knapsack_generate(const task_instance *inst, knapsack_problem *p);
/* The optimal total value (exact DP over capacities). When take is not NULL, take[0..n) receives
 * one optimal selection (1 = taken). Requires n <= KNAPSACK_MAX_ITEMS, 0 <= capacity <=
 * KNAPSACK_MAX_CAPACITY and positive weights; returns -1 otherwise. */
int knapsack_optimum(const knapsack_problem *p, unsigned char *take);
/* Reward of answer[0..len), a whitespace-separated list of distinct item indices ("" = no item):
 * value/optimum for a selection within the capacity (the baseline "worst" is the empty
 * selection, value 0, which is always feasible); 0 for one over the capacity or for anything
 * malformed (not indices, an index out of range, a repeated index). Feedback (what the attempt
 * lacks, worked out, with c the capacity and b the best value): "weight <w>/<c> room <c-w> value
 * <v>/<b>", "weight <w>/<c> value <v> optimal", "weight <w>/<c> over by <w-c>" or "malformed".
 * Returns -1 if feedback does not fit. */
float knapsack_score(const knapsack_problem *p, const char *answer, size_t len, char *feedback,
                     size_t feedback_cap);
#endif
