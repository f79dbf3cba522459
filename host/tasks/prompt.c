/* Prompt rendering shared by all domains (the templates are in task.h). */
#include "tasks/task.h"
#include "model/tokenizer.h"

typedef struct {
    int *tokens;
    int cap, len;
    int overflow;
} token_sink;

static void put_token(token_sink *s, int id) {
    if (s->len >= s->cap) {
        s->overflow = 1;
        return;
    }
    s->tokens[s->len++] = id;
}

static void put_bytes(token_sink *s, const char *bytes, size_t n) {
    if (n > (size_t)(s->cap - s->len)) {
        s->overflow = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) s->tokens[s->len++] = (unsigned char)bytes[i];
}

/* The modes and attempt arguments every prompt accepts: 0, or TASK_ERR_ARG. */
static int check_mode(int mode, const char *prev, const char *feedback) {
    if (mode == TASK_PROMPT_BASE) return prev || feedback ? TASK_ERR_ARG : 0;
    if (mode == TASK_PROMPT_IMPROVE || mode == TASK_PROMPT_DIVERGE)
        return prev ? 0 : TASK_ERR_ARG; /* an empty attempt is prev != NULL with prev_len 0 */
    return TASK_ERR_ARG;
}

/* REQUEST <request> [RESPONSE <prev> [FEEDBACK <feedback>] IMPROVE|DIVERGE] ANSWER */
static void put_request(token_sink *s, const char *request, size_t request_len, int mode, const char *prev,
                        size_t prev_len, const char *feedback, size_t feedback_len) {
    put_token(s, TOK_REQUEST);
    put_bytes(s, request, request_len);
    if (mode != TASK_PROMPT_BASE) {
        put_token(s, TOK_RESPONSE);
        put_bytes(s, prev, prev_len);
        if (feedback) {
            put_token(s, TOK_FEEDBACK);
            put_bytes(s, feedback, feedback_len);
        }
        put_token(s, mode == TASK_PROMPT_IMPROVE ? TOK_IMPROVE : TOK_DIVERGE);
    }
    put_token(s, TOK_ANSWER);
}

int task_render_prompt(const task_domain *d, const task_instance *inst, int mode, const char *prev,
                       size_t prev_len, const char *feedback, size_t feedback_len, int *tokens,
                       int cap) {
    if (!d || !inst || inst->domain != d->id || cap < 0 || check_mode(mode, prev, feedback)) return TASK_ERR_ARG;
    char request[TASK_REQUEST_CAP];
    int request_len = d->render_request(inst, request, sizeof request);
    if (request_len < 0) return TASK_ERR_ARG; /* every valid instance fits TASK_REQUEST_CAP */

    token_sink s = {tokens, cap, 0, 0};
    put_token(&s, TOK_BOS);
    put_request(&s, request, (size_t)request_len, mode, prev, prev_len, feedback, feedback_len);
    return s.overflow ? TASK_ERR_FIT : s.len;
}

int task_render_turn_prompt(const task_domain *d, const task_instance *inst, int t,
                            const task_turn_record *earlier, int mode, const char *prev, size_t prev_len,
                            const char *feedback, size_t feedback_len, int *tokens, int cap) {
    if (!d || !d->episode || !inst || inst->domain != d->id || cap < 0 || t < 0 || (t > 0 && !earlier) ||
        check_mode(mode, prev, feedback))
        return TASK_ERR_ARG;
    const int turns = d->episode->turns(inst);
    if (turns < 1 || t >= turns) return TASK_ERR_ARG;
    token_sink s = {tokens, cap, 0, 0};
    char request[TASK_REQUEST_CAP];
    put_token(&s, TOK_BOS);
    for (int i = 0; i <= t; i++) {
        int request_len = d->episode->render_turn(inst, i, request, sizeof request);
        if (request_len < 0) return TASK_ERR_ARG; /* every turn's request fits TASK_REQUEST_CAP */
        if (i == t) {
            put_request(&s, request, (size_t)request_len, mode, prev, prev_len, feedback, feedback_len);
        } else {
            if ((earlier[i].answer_len && !earlier[i].answer) || (earlier[i].results_len && !earlier[i].results))
                return TASK_ERR_ARG;
            put_token(&s, TOK_REQUEST);
            put_bytes(&s, request, (size_t)request_len);
            put_token(&s, TOK_ANSWER);
            put_bytes(&s, earlier[i].answer, earlier[i].answer_len);
            put_token(&s, TOK_FEEDBACK);
            put_bytes(&s, earlier[i].results, earlier[i].results_len);
        }
    }
    return s.overflow ? TASK_ERR_FIT : s.len;
}
