/* The ExIt loop (docs/DESIGN.md §5): one iteration plans P task instances (fresh base tasks, or partial
 * histories replayed from the buffer as improve / diverge steps), rolls out G completions each,
 * scores them with the domain's verifier, turns rewards into (diversity-scaled) group advantages,
 * takes the GRPO update, then updates the buffer: the sampled entries get their new learnability
 * score and the chosen expansions enter with the score they inherit. The method ladder
 * (grpo | curriculum | improve | diverge | exit) switches these parts on one by one.
 * Multi-turn episodes (a domain with task_domain.episode and turns > 1): a task is a turn of an
 * episode after the answers that ran at the earlier turns (replayed to get the state and the
 * results the prompt shows); an expansion, after it enters the buffer, is played on to the end of
 * its episode with the policy's answers, and every per-turn partial history enters as well. */
#ifndef EXITRL_RL_TRAINER_H
#define EXITRL_RL_TRAINER_H
#include "run/config.h"
#include "rl/task_buffer.h"
#include "rl/grpo.h"
#include "rl/rollout.h"
#include "rl/transitions.h"
#include "tasks/task.h"

/* One prompt slot of an iteration. */
typedef struct {
    buffer_entry task;     /* the base task and the history shown (depth = step) */
    int mode;            /* TASK_PROMPT_BASE | IMPROVE | DIVERGE */
    int buffer_index;    /* the replayed entry, or -1 for a fresh base task */
    float prev_quality;  /* quality of the attempt shown (iteration steps) */
    unsigned char state[TASK_STATE_CAP]; /* multi-turn: the state before the slot's turn */
} rl_slot;

typedef struct {
    double reward_mean, reward_std, quality_mean, zero_var_frac, score_mean, score_max;
    double replay_share, diverge_share, mean_step;
    double mean_turn;            /* multi-turn: mean turn of the slots' tasks (0 otherwise) */
    int run_on;                  /* multi-turn: partial histories inserted by playing expansions on */
    int run_on_stopped;          /* multi-turn: episodes stopped early (prompt over the context, history full) */
    int inserted, rejected, too_deep;
    long gen_tokens;
    double t_plan, t_rollout, t_reward, t_score, t_update, t_buffer;
    double comm_seconds;         /* of which in the gradient all-reduces across ranks (set by the caller) */
    grpo_stats update;
    transition_stats improve; /* improve steps: each completion against the attempt it was shown */
} rl_iter_stats;

typedef struct {
    const exitrl_config *cfg;
    const task_domain *domain;
    int32_t knobs[TASK_MAX_KNOBS];
    gpt_model *model;
    grpo_reference ref;                /* the reference policy (kl_beta > 0) */
    grpo_options grpo_opt;
    rollout_engine engine;
    rollout_output rollouts;           /* [n_prompts * group_size] completions of an iteration */
    task_buffer buffer;
    rng_state rng;
    int n_prompts, group_size;         /* P task instances per iteration, G rollouts each */
    int turns;                         /* multi-turn episodes of this many turns (> 1), else 0 */
    rollout_output run_on;             /* [P * group_size] playing expansions on to the episode's end */
    int prompt_cap;                    /* longest prompt in tokens */
    rl_slot *slots;                    /* [P] */
    int *prompts, *prompt_lens;        /* [P*G, prompt_cap], [P*G] */
    float *quality, *reward, *adv, *div, *scores, *emb; /* host [P*G] (scores [P], emb [P*G*C]) */
    int *chosen;                       /* [P*G] */
    char (*answers)[BUFFER_ANSWER_CAP];  /* [P*G] raw attempt bytes */
    int *answer_lens;
    char (*feedback)[BUFFER_FEEDBACK_CAP];
    /* backend scratch for the RL kernels */
    float *d_rewards, *d_adv, *d_div, *d_emb, *d_scores;
    int *d_chosen;
} rl_trainer;

/* Builds the trainer around a model already holding the warm-start weights. Returns 0, or the exit
 * code (2 config error, 1 runtime error) after a message. */
int rl_trainer_init(rl_trainer *t, const exitrl_config *cfg, gpt_model *m);
void rl_trainer_free(rl_trainer *t);
/* One iteration (0-based index `it`). Returns 0, or -1 after a message. */
int rl_iteration(rl_trainer *t, uint64_t it, rl_iter_stats *st);
/* Batch capacity the model needs for the GRPO minibatches: rows and row length. */
void rl_model_capacity(const exitrl_config *cfg, int max_seq, int *rows, int *T);
#endif
