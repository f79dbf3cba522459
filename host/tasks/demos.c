/* Supervised demonstrations for the warm start (contract in task.h). */
#include <string.h>

#include "tasks/task.h"
#include "model/tokenizer.h"

static int probability(float p) { return p >= 0.0f && p <= 1.0f; }

/* The turn an example is about: for a single-turn domain the domain's own functions, for a
 * multi-turn one turn t of its episode from `state`, after the earlier turns `earlier`. */
typedef struct {
    const task_domain *d;
    const task_instance *inst;
    const task_episode *ep; /* NULL: single-turn */
    int t;
    const void *state;
    const task_turn_record *earlier;
} demo_turn;

static int turn_teacher(const demo_turn *x, task_rng *rng, float p, char *buf, size_t cap) {
    return x->ep ? x->ep->teacher_turn(x->inst, x->t, rng, p, buf, cap) : x->d->teacher_answer(x->inst, rng, p, buf, cap);
}

static float turn_score(const demo_turn *x, const char *answer, size_t len, char *feedback, size_t cap) {
    return x->ep ? x->ep->score_turn(x->inst, x->t, x->state, answer, len, NULL, NULL, 0, feedback, cap)
                 : x->d->score(x->inst, answer, len, feedback, cap);
}

/* The teacher's improvement of a wrong attempt, or a fresh answer where the domain has no notion of
 * an edit. */
static int turn_improve(const demo_turn *x, const char *prev, size_t prev_len, task_rng *rng, float p, char *buf,
                        size_t cap) {
    if (x->ep)
        return x->ep->teacher_improve_turn ? x->ep->teacher_improve_turn(x->inst, x->t, prev, prev_len, rng, p, buf, cap)
                                           : x->ep->teacher_turn(x->inst, x->t, rng, p, buf, cap);
    return x->d->teacher_improve ? x->d->teacher_improve(x->inst, prev, prev_len, rng, p, buf, cap)
                                 : x->d->teacher_answer(x->inst, rng, p, buf, cap);
}

static int turn_prompt(const demo_turn *x, int mode, const char *prev, size_t prev_len, const char *feedback,
                       size_t feedback_len, int *tokens, int cap) {
    return x->ep ? task_render_turn_prompt(x->d, x->inst, x->t, x->earlier, mode, prev, prev_len, feedback, feedback_len,
                                           tokens, cap)
                 : task_render_prompt(x->d, x->inst, mode, prev, prev_len, feedback, feedback_len, tokens, cap);
}

/* The example of one turn (the single-turn contract in task.h). */
static int make_turn_demo(const demo_turn *x, task_rng *rng, const task_demo_options *opt, int *tokens, int *targets,
                          int cap) {
    double u = task_rng_unit(rng);
    int mode = u < opt->p_improve                    ? TASK_PROMPT_IMPROVE
               : u < opt->p_improve + opt->p_diverge ? TASK_PROMPT_DIVERGE
                                                     : TASK_PROMPT_BASE;
    char shown[TASK_ANSWER_CAP], feedback[TASK_FEEDBACK_CAP], answer[TASK_ANSWER_CAP];
    int shown_len = 0, with_feedback = 0;
    if (mode != TASK_PROMPT_BASE) {
        float p_shown = opt->p_shown_correct < 0.0f ? opt->p_correct : opt->p_shown_correct;
        shown_len = turn_teacher(x, rng, p_shown, shown, sizeof shown);
        if (shown_len < 0) return TASK_ERR_ARG; /* every valid instance fits TASK_ANSWER_CAP */
        with_feedback = task_rng_unit(rng) < opt->p_feedback;
        if (with_feedback && turn_score(x, shown, (size_t)shown_len, feedback, sizeof feedback) < 0.0f)
            return TASK_ERR_ARG;
    }
    int answer_len;
    if (mode == TASK_PROMPT_IMPROVE && opt->targets == TASK_DEMO_IMPROVE) {
        /* Keep a right attempt; improve a wrong one. */
        float q = turn_score(x, shown, (size_t)shown_len, NULL, 0);
        if (q < 0.0f) return TASK_ERR_ARG;
        if (q >= 1.0f) {
            memcpy(answer, shown, (size_t)shown_len + 1);
            answer_len = shown_len;
        } else {
            answer_len = turn_improve(x, shown, (size_t)shown_len, rng, opt->p_correct, answer, sizeof answer);
        }
    } else { /* a fresh draw, independent of the attempt shown */
        answer_len = turn_teacher(x, rng, opt->p_correct, answer, sizeof answer);
    }
    if (answer_len < 0) return TASK_ERR_ARG;

    int prompt_len = turn_prompt(x, mode, mode == TASK_PROMPT_BASE ? NULL : shown, (size_t)shown_len,
                                 with_feedback ? feedback : NULL, with_feedback ? strlen(feedback) : 0, tokens, cap);
    if (prompt_len < 0) return prompt_len;
    /* Inputs: the prompt, then the answer bytes; the EOS is only the last target. */
    int len = prompt_len + answer_len;
    if (len > cap) return TASK_ERR_FIT;
    for (int i = 0; i < answer_len; i++) tokens[prompt_len + i] = (unsigned char)answer[i];
    for (int i = 0; i < prompt_len - 1; i++) targets[i] = -1;
    for (int i = 0; i < answer_len; i++) targets[prompt_len - 1 + i] = (unsigned char)answer[i];
    targets[len - 1] = TOK_EOS;
    return len;
}

int task_make_demo(const task_domain *d, const task_instance *inst, task_rng *rng,
                   const task_demo_options *opt, int *tokens, int *targets, int cap) {
    if (!d || !inst || !rng || !opt || inst->domain != d->id) return TASK_ERR_ARG;
    if (!probability(opt->p_improve) || !probability(opt->p_diverge) ||
        !probability(opt->p_feedback) || opt->p_improve + opt->p_diverge > 1.0f ||
        !(opt->p_correct <= 1.0f) || /* also rejects NaN */
        !(opt->p_shown_correct <= 1.0f) ||
        (opt->targets != TASK_DEMO_FRESH && opt->targets != TASK_DEMO_IMPROVE))
        return TASK_ERR_ARG;
    demo_turn x = {d, inst, d->episode, 0, NULL, NULL};
    if (!x.ep) return make_turn_demo(&x, rng, opt, tokens, targets, cap);

    /* A multi-turn episode: a uniformly drawn turn t (no draw when there is one turn), after the
     * teacher played turns 0..t-1 right (executed, so the results shown are the environment's),
     * so that the state before turn t is the ground truth's and "right" and "better" at turn t
     * mean what they mean for a single turn. */
    const int turns = x.ep->turns(inst);
    if (turns < 1) return TASK_ERR_ARG;
    x.t = turns > 1 ? (int)task_rng_below(rng, (uint32_t)turns) : 0;
    unsigned char state[2][TASK_STATE_CAP];
    char answers[x.t > 0 ? x.t : 1][TASK_ANSWER_CAP], results[x.t > 0 ? x.t : 1][TASK_RESULTS_CAP];
    task_turn_record earlier[x.t > 0 ? x.t : 1];
    if (x.ep->initial_state(inst, state[0])) return TASK_ERR_ARG;
    for (int i = 0; i < x.t; i++) {
        int n = x.ep->teacher_turn(inst, i, rng, 1.0f, answers[i], sizeof answers[i]);
        if (n < 0 || x.ep->score_turn(inst, i, state[i % 2], answers[i], (size_t)n, state[(i + 1) % 2], results[i],
                                      sizeof results[i], NULL, 0) < 0.0f)
            return TASK_ERR_ARG;
        earlier[i] = (task_turn_record){answers[i], (size_t)n, results[i], strlen(results[i])};
    }
    x.state = state[x.t % 2];
    x.earlier = x.t > 0 ? earlier : NULL;
    return make_turn_demo(&x, rng, opt, tokens, targets, cap);
}
