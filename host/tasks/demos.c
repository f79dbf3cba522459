/* Supervised demonstrations for the warm start (contract in task.h). */
#include <string.h>

#include "tasks/task.h"
#include "model/tokenizer.h"

static int probability(float p) { return p >= 0.0f && p <= 1.0f; }

int task_make_demo(const task_domain *d, const task_instance *inst, task_rng *rng,
                   const task_demo_options *opt, int *tokens, int *targets, int cap) {
    if (!d || !inst || !rng || !opt || inst->domain != d->id) return TASK_ERR_ARG;
    if (!probability(opt->p_improve) || !probability(opt->p_diverge) ||
        !probability(opt->p_feedback) || opt->p_improve + opt->p_diverge > 1.0f ||
        !(opt->p_correct <= 1.0f) || /* also rejects NaN */
        !(opt->p_shown_correct <= 1.0f) ||
        (opt->targets != TASK_DEMO_FRESH && opt->targets != TASK_DEMO_IMPROVE))
        return TASK_ERR_ARG;

    double u = task_rng_unit(rng);
    int mode = u < opt->p_improve                    ? TASK_PROMPT_IMPROVE
               : u < opt->p_improve + opt->p_diverge ? TASK_PROMPT_DIVERGE
                                                     : TASK_PROMPT_BASE;
    char shown[TASK_ANSWER_CAP], feedback[TASK_FEEDBACK_CAP], answer[TASK_ANSWER_CAP];
    int shown_len = 0, with_feedback = 0;
    if (mode != TASK_PROMPT_BASE) {
        float p_shown = opt->p_shown_correct < 0.0f ? opt->p_correct : opt->p_shown_correct;
        shown_len = d->teacher_answer(inst, rng, p_shown, shown, sizeof shown);
        if (shown_len < 0) return TASK_ERR_ARG; /* every valid instance fits TASK_ANSWER_CAP */
        with_feedback = task_rng_unit(rng) < opt->p_feedback;
        if (with_feedback &&
            d->score(inst, shown, (size_t)shown_len, feedback, sizeof feedback) < 0.0f)
            return TASK_ERR_ARG;
    }
    int answer_len;
    if (mode == TASK_PROMPT_IMPROVE && opt->targets == TASK_DEMO_IMPROVE) {
        /* Keep a right attempt; improve a wrong one (or answer afresh where the domain has no
         * notion of an edit). */
        float q = d->score(inst, shown, (size_t)shown_len, NULL, 0);
        if (q < 0.0f) return TASK_ERR_ARG;
        if (q >= 1.0f) {
            memcpy(answer, shown, (size_t)shown_len + 1);
            answer_len = shown_len;
        } else if (d->teacher_improve) {
            answer_len = d->teacher_improve(inst, shown, (size_t)shown_len, rng, opt->p_correct, answer, sizeof answer);
        } else {
            answer_len = d->teacher_answer(inst, rng, opt->p_correct, answer, sizeof answer);
        }
    } else { /* a fresh draw, independent of the attempt shown */
        answer_len = d->teacher_answer(inst, rng, opt->p_correct, answer, sizeof answer);
    }
    if (answer_len < 0) return TASK_ERR_ARG;

    int prompt_len = task_render_prompt(
        d, inst, mode, mode == TASK_PROMPT_BASE ? NULL : shown, (size_t)shown_len,
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
