/* Evaluation of multi-turn episodes (docs/DESIGN.md §7; domains with task_domain.episode):
 * held-out episodes played turn by turn, with K self-improvement steps at every turn.
 *
 * Protocol, for each k in 0..K: every chain plays its episode from the initial state; at turn t the
 * policy answers the turn prompt (the earlier turns as they were played, task_render_turn_prompt),
 * then improves its answer k times (improve prompts showing the latest attempt, and its feedback
 * when `feedback` is on), each attempt scored from the state before the turn (score_turn); the
 * k-th attempt is the one executed: its state and the environment's results carry over to the
 * next turn. So at k the episode's return is what k improve steps per turn earn, and turn 0's
 * attempts 0..K (all from the initial state, drawn with the same random numbers in every play) give
 * the first-turn figures and the step-to-step transitions.
 *
 * Sequence ids (the sampling keys): chain i's generation at play k, turn t, step j is
 * (key * (K + 1) + j) * n + i with key = 0 for turn 0 and 1 + k * turns + t after, so every play
 * draws fresh numbers for turns 1.., and turn 0 is the same in every play.
 * Every MPI rank computes everything (deterministic); only rank 0 prints. */
#ifndef EXITRL_EPISODE_EVAL_H
#define EXITRL_EPISODE_EVAL_H
#include "eval/task_eval.h"

typedef struct {
    int K, turns;
    /* [K+1] each: turn 0's attempt after k improve steps (all chains) */
    double *first_score;    /* mean reward */
    double *first_se;       /* its standard error over instances (chains of one instance averaged first) */
    double *first_solved;   /* share with reward 1 (first-turn accuracy) */
    /* [K+1] each: the episode played with k improve steps per turn */
    double *ret;            /* mean return: the sum over turns of the executed answers' rewards */
    double *ret_se;         /* its standard error over instances */
    double *turns_solved;   /* mean number of turns with reward 1 */
    double *valid;          /* share of executed answers that are well formed */
    /* [K+1] each, [0] = 0: turn 0's attempt k against attempt k-1 (rl/transitions.h) */
    double *right_wrong, *wrong_right, *improved, *worse, *copy_rate;
} task_eval_episodes_result;

/* Runs the protocol on the first o->n_instances held-out episodes x o->n_samples chains (o->show
 * prints that many chains' episodes at k = K). Allocates the result arrays (free with
 * task_eval_episodes_free). Returns 0, or -1 with a message (a single-turn domain, a turn prompt
 * longer than the context, with the numbers; out of memory; a rollout error). */
int task_eval_episodes(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], gpt_model *m,
                       const task_eval_options *o, task_eval_episodes_result *out);
void task_eval_episodes_free(task_eval_episodes_result *r);
#endif
