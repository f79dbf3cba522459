/* knapsack: request "cap 20 items 3:5 4:6 ..." (weight:value), answer item indices "0 2 5". */
#include "tasks/knapsack.h"

#include <stdio.h>
#include <string.h>

#include "tasks/scan.h"

int knapsack_generate(const task_instance *inst, knapsack_problem *p) {
    if (inst->domain != TASK_DOMAIN_KNAPSACK || task_knobs_check(&task_knapsack, inst->knobs, NULL, 0))
        return -1;
    task_rng r = task_rng_seeded(task_mix64(inst->seed));
    p->n = inst->knobs[KNAPSACK_KNOB_N];
    int total = 0, lightest = KNAPSACK_MAX_WEIGHT;
    for (int i = 0; i < p->n; i++) {
        p->weight[i] = (int)task_rng_range(&r, 1, inst->knobs[KNAPSACK_KNOB_MAX_WEIGHT]);
        p->value[i] = (int)task_rng_range(&r, 1, inst->knobs[KNAPSACK_KNOB_MAX_VALUE]);
        total += p->weight[i];
        if (p->weight[i] < lightest) lightest = p->weight[i];
    }
    /* At least the lightest item fits (so the optimum is positive), and with n >= 2 and a
     * percentage <= 90 the capacity stays below the total (so taking everything is not optimal). */
    p->capacity = total * inst->knobs[KNAPSACK_KNOB_CAP_PCT] / 100;
    if (p->capacity < lightest) p->capacity = lightest;
    return 0;
}

int knapsack_optimum(const knapsack_problem *p, unsigned char *take) {
    if (p->n < 0 || p->n > KNAPSACK_MAX_ITEMS || p->capacity < 0 ||
        p->capacity > KNAPSACK_MAX_CAPACITY)
        return -1;
    for (int i = 0; i < p->n; i++)
        if (p->weight[i] < 1) return -1;
    /* best[c] = best value within capacity c over the items seen so far; kept[i][c] records
     * whether item i is in that best selection, to walk the choice back. */
    int best[KNAPSACK_MAX_CAPACITY + 1] = {0};
    unsigned char kept[KNAPSACK_MAX_ITEMS][KNAPSACK_MAX_CAPACITY + 1];
    for (int i = 0; i < p->n; i++)
        for (int c = p->capacity; c >= 0; c--) {
            kept[i][c] = 0;
            if (p->weight[i] <= c && best[c - p->weight[i]] + p->value[i] > best[c]) {
                best[c] = best[c - p->weight[i]] + p->value[i];
                kept[i][c] = 1;
            }
        }
    if (take) {
        int c = p->capacity;
        for (int i = p->n - 1; i >= 0; i--) {
            take[i] = kept[i][c];
            if (take[i]) c -= p->weight[i];
        }
    }
    return best[p->capacity];
}

/* Reads "i j k" into take[KNAPSACK_MAX_ITEMS]; returns 0, or -1 for anything but distinct in-range indices. */
static int parse_selection(const knapsack_problem *p, const char *s, size_t len,
                           unsigned char *take) {
    memset(take, 0, KNAPSACK_MAX_ITEMS);
    size_t pos = 0;
    scan_skip_space(s, len, &pos);
    while (pos < len) {
        int64_t idx = 0;
        int too_long;
        if (scan_digits(s, len, &pos, 3, &idx, &too_long) == 0 || too_long) return -1;
        if (idx >= p->n || take[idx]) return -1;
        take[idx] = 1;
        /* indices are separated by whitespace: a digit run must end at a space or the end */
        if (pos < len && !scan_is_space(s[pos])) return -1;
        scan_skip_space(s, len, &pos);
    }
    return 0;
}

float knapsack_score(const knapsack_problem *p, const char *answer, size_t len, char *feedback,
                     size_t feedback_cap) {
    unsigned char take[KNAPSACK_MAX_ITEMS];
    int optimum = knapsack_optimum(p, NULL);
    if (optimum <= 0) return -1.0f; /* not a generated problem: nothing to score against */
    if (parse_selection(p, answer, len, take))
        return task_write_feedback(feedback, feedback_cap, "malformed") ? -1.0f : 0.0f;
    int weight = 0, value = 0;
    for (int i = 0; i < p->n; i++)
        if (take[i]) {
            weight += p->weight[i];
            value += p->value[i];
        }
    float reward;
    int bad_feedback;
    if (weight > p->capacity) {
        reward = 0.0f;
        bad_feedback = task_write_feedback(feedback, feedback_cap, "weight %d/%d over by %d", weight,
                                           p->capacity, weight - p->capacity);
    } else {
        /* The feedback says what the attempt lacks, worked out: the weight to drop or the room left,
         * and the gap to the best value. */
        reward = (float)value / (float)optimum;
        bad_feedback = value == optimum
                           ? task_write_feedback(feedback, feedback_cap, "weight %d/%d value %d optimal", weight,
                                                 p->capacity, value)
                           : task_write_feedback(feedback, feedback_cap, "weight %d/%d room %d value %d/%d",
                                                 weight, p->capacity, p->capacity - weight, value, optimum);
    }
    return bad_feedback ? -1.0f : reward;
}

static int render_request(const task_instance *inst, char *buf, size_t cap) {
    knapsack_problem p;
    if (knapsack_generate(inst, &p)) return TASK_ERR_ARG;
    int len = snprintf(buf, cap, "cap %d items", p.capacity);
    for (int i = 0; i < p.n && len >= 0 && (size_t)len < cap; i++)
        len += snprintf(buf + len, cap - (size_t)len, " %d:%d", p.weight[i], p.value[i]);
    if (len < 0 || (size_t)len >= cap) {
        if (cap) buf[0] = 0;
        return TASK_ERR_FIT;
    }
    return len;
}

static float score(const task_instance *inst, const char *answer, size_t len, char *feedback,
                   size_t feedback_cap) {
    knapsack_problem p;
    if (knapsack_generate(inst, &p)) return -1.0f;
    return knapsack_score(&p, answer, len, feedback, feedback_cap);
}

static int well_formed(const task_instance *inst, const char *answer, size_t len) {
    knapsack_problem p;
    unsigned char take[KNAPSACK_MAX_ITEMS];
    if (knapsack_generate(inst, &p)) return -1;
    return parse_selection(&p, answer, len, take) == 0;
}

/* 0.9 with two items, 0.04 less per extra item, never below 0.3. */
static float teacher_p_correct(const task_instance *inst) {
    float p = 0.9f - 0.04f * (float)(inst->knobs[KNAPSACK_KNOB_N] - 2);
    return p < 0.3f ? 0.3f : p;
}

/* Writes a selection as "i j k" (ascending indices). Returns its length or TASK_ERR_FIT. */
static int render_selection(const knapsack_problem *p, const unsigned char *take, char *buf, size_t cap) {
    if (cap == 0) return TASK_ERR_FIT;
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < p->n; i++) {
        if (!take[i]) continue;
        int k = snprintf(buf + len, cap - len, len ? " %d" : "%d", i);
        if (k < 0 || (size_t)k >= cap - len) {
            buf[0] = 0;
            return TASK_ERR_FIT;
        }
        len += (size_t)k;
    }
    return (int)len;
}

/* A wrong attempt is what a hasty packer does: items in random order, each taken if it still
 * fits; if that happens to be optimal, its least valuable item is dropped (values are >= 1, so
 * the result is strictly worse but still feasible). */
static void hasty_selection(const knapsack_problem *p, task_rng *r, int optimum,
                            unsigned char take[KNAPSACK_MAX_ITEMS]) {
    int order[KNAPSACK_MAX_ITEMS];
    for (int i = 0; i < p->n; i++) order[i] = i;
    for (int i = p->n - 1; i > 0; i--) {
        int j = (int)task_rng_below(r, (uint32_t)i + 1);
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    memset(take, 0, KNAPSACK_MAX_ITEMS);
    int room = p->capacity, value = 0, cheapest = -1;
    for (int k = 0; k < p->n; k++) {
        int i = order[k];
        if (p->weight[i] > room) continue;
        take[i] = 1;
        room -= p->weight[i];
        value += p->value[i];
        if (cheapest < 0 || p->value[i] < p->value[cheapest]) cheapest = i;
    }
    if (value == optimum) take[cheapest] = 0;
}

static int teacher_answer(const task_instance *inst, task_rng *r, float p_correct, char *buf,
                          size_t cap) {
    knapsack_problem p;
    if (knapsack_generate(inst, &p)) return TASK_ERR_ARG;
    if (p_correct < 0) p_correct = teacher_p_correct(inst);
    unsigned char take[KNAPSACK_MAX_ITEMS];
    int optimum = knapsack_optimum(&p, take);
    if (task_rng_unit(r) >= p_correct) hasty_selection(&p, r, optimum, take);
    return render_selection(&p, take, buf, cap);
}

/* One local-search move that makes a feasible selection strictly better, in this order: add the
 * most valuable item that still fits; else the single swap (one out, one in) that gains the most
 * value within the capacity. Returns 1 when a move was made, 0 at a local optimum. */
static int improve_move(const knapsack_problem *p, unsigned char *take) {
    int weight = 0;
    for (int i = 0; i < p->n; i++) weight += take[i] ? p->weight[i] : 0;
    int add = -1;
    for (int i = 0; i < p->n; i++)
        if (!take[i] && weight + p->weight[i] <= p->capacity && (add < 0 || p->value[i] > p->value[add])) add = i;
    if (add >= 0) {
        take[add] = 1;
        return 1;
    }
    int out = -1, in = -1, gain = 0;
    for (int o = 0; o < p->n; o++) {
        if (!take[o]) continue;
        for (int i = 0; i < p->n; i++)
            if (!take[i] && weight - p->weight[o] + p->weight[i] <= p->capacity &&
                p->value[i] - p->value[o] > gain) {
                gain = p->value[i] - p->value[o];
                out = o, in = i;
            }
    }
    if (out < 0) return 0;
    take[out] = 0, take[in] = 1;
    return 1;
}

/* The teacher improving an attempt, one step of hill climbing that composes over many steps: the
 * items of a well-formed attempt that fit (an over-capacity selection loses its worst value per
 * weight items until it fits), then one local-search move; at a local optimum, an optimal
 * selection. A malformed attempt gets a fresh teacher answer (p_correct applies to that only). */
static int teacher_improve(const task_instance *inst, const char *prev, size_t prev_len, task_rng *r,
                           float p_correct, char *buf, size_t cap) {
    knapsack_problem p;
    if (knapsack_generate(inst, &p)) return TASK_ERR_ARG;
    unsigned char take[KNAPSACK_MAX_ITEMS];
    if (parse_selection(&p, prev, prev_len, take) != 0) return teacher_answer(inst, r, p_correct, buf, cap);
    int weight = 0;
    for (int i = 0; i < p.n; i++) weight += take[i] ? p.weight[i] : 0;
    int repaired = 0;
    while (weight > p.capacity) { /* drop the item with the least value per unit of weight */
        int worst = -1;
        for (int i = 0; i < p.n; i++)
            if (take[i] && (worst < 0 || p.value[i] * p.weight[worst] < p.value[worst] * p.weight[i])) worst = i;
        take[worst] = 0;
        weight -= p.weight[worst];
        repaired = 1;
    }
    if (!improve_move(&p, take) && !repaired) knapsack_optimum(&p, take);
    return render_selection(&p, take, buf, cap);
}

const task_domain task_knapsack = {
    .name = "knapsack",
    .id = TASK_DOMAIN_KNAPSACK,
    .n_knobs = 4,
    .knobs = {{"n", 2, KNAPSACK_MAX_ITEMS, 6, "number of items"},
              {"max_weight", 2, KNAPSACK_MAX_WEIGHT, 10, "largest item weight (weights are 1..max)"},
              {"max_value", 2, KNAPSACK_MAX_VALUE, 20, "largest item value (values are 1..max)"},
              {"cap_pct", 10, 90, 50, "capacity as a percentage of the total weight"}},
    .render_request = render_request,
    .score = score,
    .teacher_answer = teacher_answer,
    .teacher_improve = teacher_improve,
    .teacher_p_correct = teacher_p_correct,
    .well_formed = well_formed,
};
