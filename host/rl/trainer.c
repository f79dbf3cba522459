#include "rl/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl/completion.h"
#include "rl/ngram_embed.h"
#include "dist/dist.h"
#include "model/nvtx.h"
#include "run/run_log.h"
#include "model/tokenizer.h"

void rl_model_capacity(const exitrl_config *cfg, int max_seq, int *rows, int *T) {
    /* Rows of a GRPO minibatch at a typical length; longer rows run as micro-batches (grpo.c), so
     * the activations stay within RL_UPDATE_TOKENS tokens whatever P x G is. */
    enum { RL_UPDATE_TOKENS = 1 << 16 };
    int n = cfg->prompts * cfg->group_size, mb = (n + cfg->minibatches - 1) / cfg->minibatches;
    *T = max_seq < 128 ? max_seq : 128;
    *rows = mb * *T <= RL_UPDATE_TOKENS ? mb : RL_UPDATE_TOKENS / *T;
}

int rl_trainer_init(rl_trainer *t, const exitrl_config *cfg, gpt_model *m) {
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->model = m;
    t->domain = task_domain_find(cfg->task);
    char why[256];
    if (!t->domain) {
        fprintf(stderr, "exitrl train: config key 'task' must name a domain (arith, countdown, knapsack, ledger)\n");
        return 2;
    }
    if (task_knobs_parse(t->domain, cfg->task_knobs, t->knobs, why, sizeof why)) {
        fprintf(stderr, "exitrl: config key 'task_knobs': %s\n", why);
        return 2;
    }
    t->n_prompts = cfg->prompts;
    t->group_size = cfg->group_size;
    if (t->group_size < 2) {
        fprintf(stderr, "exitrl: config key 'group_size' = %d: GRPO needs at least 2 rollouts per prompt\n", t->group_size);
        return 2;
    }
    rng_seed(&t->rng, (uint64_t)cfg->seed ^ 0xE817ULL);
    task_buffer_options bo;
    task_buffer_options_default(&bo);
    bo.capacity = cfg->buffer_capacity;
    bo.min_size = cfg->buffer_min;
    bo.p_replay = (float)cfg->p_replay;
    bo.kappa = (float)cfg->kappa;
    bo.priority = cfg->rank_beta > 0 ? BUFFER_PRIORITY_RANK : BUFFER_PRIORITY_SOFTMAX;
    if (cfg->rank_beta > 0) bo.rank_beta = (float)cfg->rank_beta;
    bo.staleness = (float)cfg->staleness;
    if (task_buffer_init(&t->buffer, &bo, why, sizeof why)) {
        fprintf(stderr, "exitrl: buffer: %s\n", why);
        return 2;
    }
    t->grpo_opt = (grpo_options){cfg->loss_agg, cfg->epochs, cfg->minibatches, cfg->max_new_tokens,
                             {(float)(1.0 / cfg->temperature), (float)cfg->clip_eps_low, (float)cfg->clip_eps_high,
                              (float)cfg->kl_beta},
                             {(float)cfg->lr, (float)cfg->beta1, (float)cfg->beta2, (float)cfg->adam_eps,
                              (float)cfg->weight_decay, (float)cfg->grad_clip}, GRPO_FAULT_NONE, cfg->share_prefix, 0, 0};
    if (cfg->kl_beta > 0 && grpo_reference_init(&t->ref, m)) return 1;

    const int n = t->n_prompts * t->group_size, C = m->cfg.d_model;
    exitrl_backend *be = m->backend;
    t->prompt_cap = m->cfg.max_seq - 1;
    t->slots = calloc((size_t)t->n_prompts, sizeof *t->slots);
    t->prompts = malloc(sizeof(int) * (size_t)n * t->prompt_cap);
    t->prompt_lens = malloc(sizeof(int) * n);
    t->quality = malloc(sizeof(float) * n);
    t->reward = malloc(sizeof(float) * n);
    t->adv = malloc(sizeof(float) * n);
    t->div = malloc(sizeof(float) * n);
    t->scores = malloc(sizeof(float) * t->n_prompts);
    t->emb = malloc(sizeof(float) * (size_t)n * C);
    t->chosen = malloc(sizeof(int) * n);
    t->answers = malloc(sizeof *t->answers * n);
    t->answer_lens = malloc(sizeof(int) * n);
    t->feedback = malloc(sizeof *t->feedback * n);
    t->d_rewards = be->alloc(be, sizeof(float) * n);
    t->d_adv = be->alloc(be, sizeof(float) * n);
    t->d_div = be->alloc(be, sizeof(float) * n);
    t->d_emb = be->alloc(be, sizeof(float) * (size_t)n * C);
    t->d_scores = be->alloc(be, sizeof(float) * t->n_prompts);
    t->d_chosen = be->alloc(be, sizeof(int) * n);
    if (!t->slots || !t->prompts || !t->prompt_lens || !t->quality || !t->reward || !t->adv || !t->div ||
        !t->scores || !t->emb || !t->chosen || !t->answers || !t->answer_lens || !t->feedback || !t->d_rewards ||
        !t->d_adv || !t->d_div || !t->d_emb || !t->d_scores || !t->d_chosen) {
        fprintf(stderr, "exitrl: out of memory for %d rollouts\n", n);
        return 1;
    }
    int chunk = n < 1024 ? n : 1024;
    if (rollout_create(&t->engine, m, chunk, m->cfg.max_seq) || rollout_output_alloc(&t->rollouts, n, m->cfg.max_seq, C))
        return 1;
    if (t->domain->episode) { /* multi-turn when the knobs give episodes of several turns */
        task_instance inst;
        if (task_draw(t->domain, t->knobs, TASK_SPLIT_TRAIN, (uint64_t)cfg->seed, 0, &inst, why, sizeof why)) {
            fprintf(stderr, "exitrl: %s\n", why);
            return 2;
        }
        int turns = t->domain->episode->turns(&inst);
        t->turns = turns > 1 ? turns : 0;
        if (t->turns && rollout_output_alloc(&t->run_on, n, m->cfg.max_seq, C)) return 1;
    }
    t->engine.share_prefix = cfg->share_prefix;
    return 0;
}

void rl_trainer_free(rl_trainer *t) {
    if (!t->model) return;
    exitrl_backend *be = t->model->backend;
    void *dev[] = {t->d_rewards, t->d_adv, t->d_div, t->d_emb, t->d_scores, t->d_chosen};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) be->free(be, dev[i]);
    rollout_destroy(&t->engine);
    rollout_output_free(&t->rollouts);
    if (t->turns) rollout_output_free(&t->run_on);
    if (t->ref.master) grpo_reference_free(&t->ref, t->model);
    task_buffer_free(&t->buffer);
    free(t->slots), free(t->prompts), free(t->prompt_lens), free(t->quality), free(t->reward), free(t->adv);
    free(t->div), free(t->scores), free(t->emb), free(t->chosen), free(t->answers), free(t->answer_lens);
    free(t->feedback);
    memset(t, 0, sizeof *t);
}

/* Chooses each slot's task: a fresh base task, or (methods with a buffer) a replayed entry. */
static int plan_slots(rl_trainer *t, uint64_t it) {
    const int iterate = t->cfg->method >= METHOD_IMPROVE;
    for (int s = 0; s < t->n_prompts; s++) {
        rl_slot *sl = &t->slots[s];
        sl->buffer_index = -1;
        sl->mode = TASK_PROMPT_BASE;
        sl->prev_quality = 0.0f;
        if (t->cfg->method != METHOD_GRPO && task_buffer_should_replay(&t->buffer, &t->rng)) {
            int idx = task_buffer_sample(&t->buffer, &t->rng, it);
            int keep = idx < 0 ? -1 : task_buffer_prefix(&t->buffer, idx, &t->rng);
            if (idx < 0 || keep < 0 || task_buffer_copy_prefix(&t->buffer, idx, keep, &sl->task)) {
                fprintf(stderr, "exitrl: internal error: buffer sampling failed\n");
                return -1;
            }
            sl->buffer_index = idx;
            if (iterate && keep > 0) {
                int diverge = t->cfg->method >= METHOD_DIVERGE && rng_uniform(&t->rng) < t->cfg->p_diverge;
                sl->mode = diverge ? TASK_PROMPT_DIVERGE : TASK_PROMPT_IMPROVE;
                sl->prev_quality = sl->task.history[keep - 1].reward;
            }
            continue;
        }
        task_instance inst;
        char why[160];
        if (task_draw(t->domain, t->knobs, TASK_SPLIT_TRAIN, (uint64_t)t->cfg->seed, rng_u64(&t->rng), &inst, why,
                      sizeof why)) {
            fprintf(stderr, "exitrl: %s\n", why);
            return -1;
        }
        buffer_entry_from_task(&sl->task, &inst);
    }
    return 0;
}

/* Multi-turn: the answers that ran at turns 0..e->turn-1, replayed from the initial state: state
 * receives the state before turn e->turn, rec[0..turn) the earlier turns as the prompt shows them
 * (their results in results[]). Returns 0, or -1 when the domain cannot replay them. */
static int replay_turns(const rl_trainer *t, const buffer_entry *e, void *state, task_turn_record *rec,
                        char (*results)[TASK_RESULTS_CAP]) {
    const task_episode *E = t->domain->episode;
    unsigned char next[TASK_STATE_CAP];
    if (E->initial_state(&e->task, state)) return -1;
    for (int i = 0; i < e->turn; i++) {
        const buffer_attempt *a = &e->history[i];
        if (E->score_turn(&e->task, i, state, a->answer, a->answer_len, next, results[i], TASK_RESULTS_CAP, NULL, 0) < 0.0f)
            return -1;
        memcpy(state, next, TASK_STATE_CAP);
        rec[i] = (task_turn_record){a->answer, a->answer_len, results[i], strlen(results[i])};
    }
    return 0;
}

/* The prompt of a task (an entry at its turn, in `mode`) into dst[cap]: the latest attempt and its
 * feedback shown for improve / diverge. Multi-turn entries replay their earlier turns (state
 * receives the state before the task's turn). Returns the length or a TASK_ERR_* code. */
static int render_task(const rl_trainer *t, const buffer_entry *e, int mode, void *state, int *dst, int cap) {
    const int feedback = t->cfg->feedback;
    const buffer_attempt *a = mode == TASK_PROMPT_BASE ? NULL : &e->history[e->depth - 1];
    const char *prev = a ? a->answer : NULL, *fb = a && feedback ? a->feedback : NULL;
    const size_t prev_len = a ? a->answer_len : 0, fb_len = a && feedback ? a->feedback_len : 0;
    if (!t->turns) return task_render_prompt(t->domain, &e->task, mode, prev, prev_len, fb, fb_len, dst, cap);
    task_turn_record rec[BUFFER_MAX_DEPTH];
    char results[BUFFER_MAX_DEPTH][TASK_RESULTS_CAP];
    if (replay_turns(t, e, state, rec, results)) return TASK_ERR_ARG;
    return task_render_turn_prompt(t->domain, &e->task, e->turn, e->turn ? rec : NULL, mode, prev, prev_len, fb, fb_len,
                                   dst, cap);
}

static int render_prompts(rl_trainer *t) {
    for (int s = 0; s < t->n_prompts; s++) {
        rl_slot *sl = &t->slots[s];
        int *dst = t->prompts + (size_t)s * t->group_size * t->prompt_cap;
        int len = render_task(t, &sl->task, sl->mode, sl->state, dst, t->prompt_cap);
        if (len <= 0) {
            if (len == TASK_ERR_ARG) fprintf(stderr, "exitrl: a replayed task's earlier turns do not replay\n");
            else if (t->turns)
                fprintf(stderr, "exitrl: the prompt of turn %d (of %d) does not fit the context (%d tokens); raise "
                                "max_seq or train on fewer turns\n", sl->task.turn + 1, t->turns, t->model->cfg.max_seq);
            else
                fprintf(stderr, "exitrl: a prompt does not fit the context (%d tokens); raise max_seq or shorten answers\n",
                        t->model->cfg.max_seq);
            return -1;
        }
        for (int j = 0; j < t->group_size; j++) {
            if (j) memcpy(dst + (size_t)j * t->prompt_cap, dst, sizeof(int) * len);
            t->prompt_lens[s * t->group_size + j] = len;
        }
    }
    return 0;
}

/* Quality (the verifier's score) of each completion, its raw attempt bytes and feedback, and the
 * RL reward: the quality itself at base steps, else by iter_reward. */
static void compute_rewards(rl_trainer *t, rl_iter_stats *st) {
    const rollout_output *o = &t->rollouts;
    for (int s = 0; s < t->n_prompts; s++) {
        const rl_slot *sl = &t->slots[s];
        float delta_max = 0.0f;
        for (int j = 0; j < t->group_size; j++) {
            int i = s * t->group_size + j;
            const int *gen = o->tokens + (size_t)i * o->S + o->prompt_len[i];
            char answer[512];
            int len = completion_answer(gen, o->gen_len[i], o->hit_eos[i], answer, sizeof answer);
            float q = len < 0  ? 0.0f
                      : t->turns ? t->domain->episode->score_turn(&sl->task.task, sl->task.turn, sl->state, answer,
                                                                  (size_t)len, NULL, NULL, 0, t->feedback[i],
                                                                  BUFFER_FEEDBACK_CAP)
                                 : t->domain->score(&sl->task.task, answer, (size_t)len, t->feedback[i], BUFFER_FEEDBACK_CAP);
            if (len < 0) snprintf(t->feedback[i], BUFFER_FEEDBACK_CAP, "malformed");
            t->quality[i] = q < 0 ? 0.0f : q;
            /* the attempt kept in the history: bytes before the first special token */
            const int k = completion_raw(gen, o->gen_len[i], t->answers[i], BUFFER_ANSWER_CAP);
            t->answer_lens[i] = k;
            delta_max = fmaxf(delta_max, t->quality[i] - sl->prev_quality);
            if (sl->mode == TASK_PROMPT_IMPROVE) {
                const buffer_attempt *shown = &sl->task.history[sl->task.depth - 1];
                transition_add(&st->improve, shown->answer, shown->answer_len, sl->prev_quality, t->answers[i],
                               (size_t)k, t->quality[i]);
            }
        }
        for (int j = 0; j < t->group_size; j++) {
            int i = s * t->group_size + j;
            float q = t->quality[i], q0 = sl->prev_quality, r = q;
            if (sl->mode != TASK_PROMPT_BASE && t->cfg->iter_reward == ITER_REWARD_IMPROVEMENT)
                r = q0 >= 1.0f ? 0.0f : fmaxf(0.0f, (q - q0) / (1.0f - q0));
            else if (sl->mode != TASK_PROMPT_BASE && t->cfg->iter_reward == ITER_REWARD_DELTA)
                r = delta_max > 0.0f ? fmaxf(0.0f, (q - q0) / delta_max) : 0.0f;
            t->reward[i] = r;
        }
    }
}

/* Group scores and expansion choice, diversity scales and advantages: the RL kernels. */
static void score_and_advantage(rl_trainer *t, uint64_t it) {
    exitrl_backend *be = t->model->backend;
    const int n = t->n_prompts * t->group_size, C = t->model->cfg.d_model;
    be->upload(be, t->d_rewards, t->reward, sizeof(float) * n);
    be->score_groups(be, t->d_scores, t->d_chosen, t->d_rewards, t->n_prompts, t->group_size, t->cfg->insert, t->cfg->insert_k,
                     (uint64_t)t->cfg->seed ^ (it * 0x9E3779B97F4A7C15ULL));
    const float *div = NULL;
    if (t->cfg->method == METHOD_EXIT) {
        if (t->cfg->diversity_embed == DIVERSITY_NGRAM) {
            for (int i = 0; i < n; i++)
                ngram_embed(t->rollouts.tokens + (size_t)i * t->rollouts.S + t->rollouts.prompt_len[i], t->rollouts.gen_len[i],
                            t->emb + (size_t)i * C, C);
        } else {
            memcpy(t->emb, t->rollouts.embed, sizeof(float) * (size_t)n * C);
        }
        be->upload(be, t->d_emb, t->emb, sizeof(float) * (size_t)n * C);
        be->diversity_scale(be, t->d_div, t->d_emb, t->n_prompts, t->group_size, C);
        div = t->d_div;
    }
    be->group_advantage(be, t->d_adv, t->d_rewards, div, t->n_prompts, t->group_size, t->cfg->scale_rewards, (float)t->cfg->adv_eps);
    be->download(be, t->adv, t->d_adv, sizeof(float) * n);
    be->download(be, t->scores, t->d_scores, sizeof(float) * t->n_prompts);
    be->download(be, t->chosen, t->d_chosen, sizeof(int) * n);
    if (div) be->download(be, t->div, t->d_div, sizeof(float) * n);
}

/* Multi-turn: plays the expansions just inserted (live[0..n_live)) on to the end of their episodes:
 * the latest attempt runs at its turn, the policy answers the next turn's base prompt (sampled as
 * the iteration's rollouts, with their own random numbers), and that partial history enters the
 * buffer with the learnability its expansion inherited; until the last turn. An episode whose next
 * prompt does not fit the context, or whose history is full, stops there (counted). */
static int play_on(rl_trainer *t, buffer_entry *live, int n_live, uint64_t it, rl_iter_stats *st) {
    const task_episode *E = t->domain->episode;
    const int n = t->n_prompts * t->group_size;
    unsigned char (*state)[TASK_STATE_CAP] = malloc(sizeof *state * (size_t)(n_live > 0 ? n_live : 1));
    int *lens = malloc(sizeof(int) * (size_t)(n_live > 0 ? n_live : 1));
    if (!state || !lens) {
        free(state), free(lens);
        fprintf(stderr, "exitrl: out of memory playing episodes on\n");
        return -1;
    }
    const struct exitrl_sampling sp = {(float)t->cfg->temperature, t->cfg->top_k, (float)t->cfg->top_p, 0, TOK_EOS,
                                       ((uint64_t)t->cfg->seed * 0x100000001B3ULL + it) ^ 0x52554E2D4F4EULL};
    char why[160], err[256], answer[512];
    int rc = 0;
    for (int step = 0; n_live > 0 && rc == 0; step++) {
        int m = 0;
        for (int i = 0; i < n_live; i++) { /* to the next turn; finished and unfit episodes leave */
            if (live[i].turn + 1 >= t->turns || buffer_entry_next_turn(&live[i], why, sizeof why)) continue;
            lens[m] = render_task(t, &live[i], TASK_PROMPT_BASE, state[m], t->prompts + (size_t)m * t->prompt_cap,
                                  t->prompt_cap);
            if (lens[m] <= 0) {
                st->run_on_stopped++;
                continue;
            }
            live[m++] = live[i];
        }
        n_live = m;
        if (!n_live) break;
        if (rollout_generate(&t->engine, t->prompts, lens, t->prompt_cap, n_live, t->cfg->max_new_tokens, &sp, step * n,
                             &t->run_on, err, sizeof err)) {
            fprintf(stderr, "exitrl: rollout failed playing episodes on: %s\n", err);
            rc = -1;
            break;
        }
        const rollout_output *o = &t->run_on;
        for (int i = 0; i < n_live; i++) {
            const int *gen = o->tokens + (size_t)i * o->S + o->prompt_len[i];
            char feedback[BUFFER_FEEDBACK_CAP], raw[BUFFER_ANSWER_CAP];
            int len = completion_answer(gen, o->gen_len[i], o->hit_eos[i], answer, sizeof answer);
            float q = len < 0 ? 0.0f
                              : E->score_turn(&live[i].task, live[i].turn, state[i], answer, (size_t)len, NULL, NULL, 0,
                                              feedback, sizeof feedback);
            if (len < 0) snprintf(feedback, sizeof feedback, "malformed");
            const int k = completion_raw(gen, o->gen_len[i], raw, BUFFER_ANSWER_CAP);
            if (buffer_entry_append(&live[i], raw, (size_t)k, q < 0 ? 0.0f : q, feedback, strlen(feedback), why,
                                    sizeof why)) {
                st->run_on_stopped++;
                live[i].turn = (int16_t)t->turns; /* leaves at the next step */
                continue;
            }
            int ins = task_buffer_insert(&t->buffer, &live[i], it, why, sizeof why);
            ins >= 0 ? st->run_on++ : st->rejected++;
        }
    }
    free(state), free(lens);
    return rc;
}

/* Scores of the replayed entries first (an insert may move entries), then the expansions. */
static int update_buffer(rl_trainer *t, uint64_t it, rl_iter_stats *st) {
    if (t->cfg->method == METHOD_GRPO) return 0;
    for (int s = 0; s < t->n_prompts; s++)
        if (t->slots[s].buffer_index >= 0) task_buffer_update_score(&t->buffer, t->slots[s].buffer_index, t->scores[s]);
    char why[160];
    buffer_entry *live = NULL; /* multi-turn: the inserted expansions, to play on */
    int n_live = 0;
    if (t->turns && t->cfg->method != METHOD_CURRICULUM &&
        !(live = malloc(sizeof *live * (size_t)t->n_prompts * t->group_size))) {
        fprintf(stderr, "exitrl: out of memory for the expansions\n");
        return -1;
    }
    for (int s = 0; s < t->n_prompts; s++) {
        const rl_slot *sl = &t->slots[s];
        if (t->cfg->method == METHOD_CURRICULUM) { /* the buffer holds base tasks, scored by learnability */
            if (sl->buffer_index >= 0) continue;
            buffer_entry e = sl->task;
            e.score = t->scores[s];
            int rc = task_buffer_insert(&t->buffer, &e, it, why, sizeof why);
            rc >= 0 ? st->inserted++ : st->rejected++;
            continue;
        }
        for (int j = 0; j < t->group_size; j++) {
            int i = s * t->group_size + j;
            if (!t->chosen[i]) continue;
            buffer_entry e = sl->task;
            int rc = buffer_entry_append(&e, t->answers[i], (size_t)t->answer_lens[i], t->quality[i], t->feedback[i],
                                       strlen(t->feedback[i]), why, sizeof why);
            if (rc) { /* past BUFFER_MAX_DEPTH attempts: the chain is not extended further */
                st->too_deep++;
                continue;
            }
            e.score = t->scores[s]; /* an expansion inherits its group's learnability */
            rc = task_buffer_insert(&t->buffer, &e, it, why, sizeof why);
            rc >= 0 ? st->inserted++ : st->rejected++;
            if (rc >= 0 && live) live[n_live++] = e;
        }
    }
    int rc = live ? play_on(t, live, n_live, it, st) : 0;
    free(live);
    return rc;
}

/* Rollouts of this rank's prompt slots (every slot in one process; groups never span ranks), then
 * every rank gets all of them (sequence ids stay global: the samples are those of one process). */
static int generate(rl_trainer *t, const struct exitrl_sampling *sp) {
    const int G = t->group_size, S = t->rollouts.S, C = t->rollouts.C;
    int64_t lo, hi;
    dist_share(t->n_prompts, &lo, &hi);
    const size_t r0 = (size_t)lo * G;
    rollout_output view = t->rollouts; /* this rank's rows of the output */
    view.tokens += r0 * S, view.logprobs += r0 * S, view.embed += r0 * C;
    view.prompt_len += r0, view.gen_len += r0, view.hit_eos += r0;
    view.B = (int)(hi - lo) * G;
    char err[256] = "";
    int failed = view.B > 0 && rollout_generate(&t->engine, t->prompts + r0 * t->prompt_cap, t->prompt_lens + r0,
                                                 t->prompt_cap, view.B, t->cfg->max_new_tokens, sp, (int)r0, &view,
                                                 err, sizeof err);
    if (failed) fprintf(stderr, "exitrl: rollout failed%s: %s\n", dist_note(), err);
    if (dist_or(failed, "rollouts")) return -1;
    rollout_output *o = &t->rollouts;
    dist_allgather(o->tokens, sizeof(int) * G * S, t->n_prompts, "rollout tokens");
    dist_allgather(o->logprobs, sizeof(float) * G * S, t->n_prompts, "rollout log-probs");
    dist_allgather(o->embed, sizeof(float) * G * C, t->n_prompts, "rollout embeddings");
    dist_allgather(o->prompt_len, sizeof(int) * G, t->n_prompts, "rollout prompt lengths");
    dist_allgather(o->gen_len, sizeof(int) * G, t->n_prompts, "rollout lengths");
    dist_allgather(o->hit_eos, sizeof(int) * G, t->n_prompts, "rollout EOS flags");
    return 0;
}

int rl_iteration(rl_trainer *t, uint64_t it, rl_iter_stats *st) {
    memset(st, 0, sizeof *st);
    const int n = t->n_prompts * t->group_size;
    double t0 = now_seconds();
    nvtx_push("rl_iteration");
    if (plan_slots(t, it) || render_prompts(t)) {
        nvtx_pop();
        return -1;
    }
    double t1 = now_seconds();
    struct exitrl_sampling sp = {(float)t->cfg->temperature, t->cfg->top_k, (float)t->cfg->top_p, 0, TOK_EOS,
                                 (uint64_t)t->cfg->seed * 0x100000001B3ULL + it};
    if (generate(t, &sp)) {
        nvtx_pop();
        return -1;
    }
    double t2 = now_seconds();
    compute_rewards(t, st);
    double t3 = now_seconds();
    score_and_advantage(t, it);
    double t4 = now_seconds();
    int64_t lo, hi; /* this rank's prompt slots: it trains on their completions */
    dist_share(t->n_prompts, &lo, &hi);
    t->grpo_opt.rank_lo = (int)lo * t->group_size, t->grpo_opt.rank_hi = dist_size() > 1 ? (int)hi * t->group_size : 0;
    if (grpo_update(t->model, t->cfg->kl_beta > 0 ? &t->ref : NULL, &t->rollouts, n, t->adv, &t->grpo_opt, &st->update)) {
        nvtx_pop();
        return -1;
    }
    if (t->cfg->kl_beta > 0 && (it + 1) % (uint64_t)t->cfg->ref_every == 0)
        grpo_reference_update(&t->ref, t->model, (float)t->cfg->ref_alpha);
    t->model->backend->sync(t->model->backend); /* the update phase's time must include its device work */
    double t5 = now_seconds();
    if (update_buffer(t, it, st)) {
        nvtx_pop();
        return -1;
    }
    double t6 = now_seconds();
    nvtx_pop();

    double sum = 0, sum2 = 0, qsum = 0, ssum = 0, smax = 0, step = 0, turn = 0;
    int zero_var = 0, replays = 0, diverges = 0;
    for (int i = 0; i < n; i++) {
        sum += t->reward[i];
        sum2 += (double)t->reward[i] * t->reward[i];
        qsum += t->quality[i];
        st->gen_tokens += t->rollouts.gen_len[i];
    }
    for (int s = 0; s < t->n_prompts; s++) {
        ssum += t->scores[s];
        smax = fmax(smax, t->scores[s]);
        zero_var += t->scores[s] == 0.0f;
        replays += t->slots[s].buffer_index >= 0;
        diverges += t->slots[s].mode == TASK_PROMPT_DIVERGE;
        step += t->slots[s].task.depth - t->slots[s].task.turn; /* attempts at the task's turn */
        turn += t->slots[s].task.turn;
    }
    st->mean_turn = turn / t->n_prompts;
    st->reward_mean = sum / n;
    st->reward_std = sqrt(fmax(0.0, sum2 / n - st->reward_mean * st->reward_mean));
    st->quality_mean = qsum / n;
    st->score_mean = ssum / t->n_prompts;
    st->score_max = smax;
    st->zero_var_frac = (double)zero_var / t->n_prompts;
    st->replay_share = (double)replays / t->n_prompts;
    st->diverge_share = (double)diverges / t->n_prompts;
    st->mean_step = step / t->n_prompts;
    st->t_plan = t1 - t0, st->t_rollout = t2 - t1, st->t_reward = t3 - t2;
    st->t_score = t4 - t3, st->t_update = t5 - t4, st->t_buffer = t6 - t5;
    return 0;
}
