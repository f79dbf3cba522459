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

int task_render_prompt(const task_domain *d, const task_instance *inst, int mode, const char *prev,
                       size_t prev_len, const char *feedback, size_t feedback_len, int *tokens,
                       int cap) {
    if (!d || !inst || inst->domain != d->id || cap < 0) return TASK_ERR_ARG;
    if (mode == TASK_PROMPT_BASE) {
        if (prev || feedback) return TASK_ERR_ARG;
    } else if (mode == TASK_PROMPT_IMPROVE || mode == TASK_PROMPT_DIVERGE) {
        if (!prev) return TASK_ERR_ARG; /* an empty attempt is prev != NULL with prev_len 0 */
    } else {
        return TASK_ERR_ARG;
    }
    char request[TASK_REQUEST_CAP];
    int request_len = d->render_request(inst, request, sizeof request);
    if (request_len < 0) return TASK_ERR_ARG; /* every valid instance fits TASK_REQUEST_CAP */

    token_sink s = {tokens, cap, 0, 0};
    put_token(&s, TOK_BOS);
    put_token(&s, TOK_REQUEST);
    put_bytes(&s, request, (size_t)request_len);
    if (mode != TASK_PROMPT_BASE) {
        put_token(&s, TOK_RESPONSE);
        put_bytes(&s, prev, prev_len);
        if (feedback) {
            put_token(&s, TOK_FEEDBACK);
            put_bytes(&s, feedback, feedback_len);
        }
        put_token(&s, mode == TASK_PROMPT_IMPROVE ? TOK_IMPROVE : TOK_DIVERGE);
    }
    put_token(&s, TOK_ANSWER);
    return s.overflow ? TASK_ERR_FIT : s.len;
}
