/* Registry, knobs, instance validation and the train/held-out partition of all task domains. */
#include "tasks/task.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const task_domain *const domains[] = {&task_arith, &task_countdown, &task_knapsack, &task_ledger};
enum { N_DOMAINS = (int)(sizeof domains / sizeof domains[0]) };

int task_domain_count(void) { return N_DOMAINS; }

const task_domain *task_domain_at(int i) { return i >= 0 && i < N_DOMAINS ? domains[i] : NULL; }

const task_domain *task_domain_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < N_DOMAINS; i++)
        if (strcmp(domains[i]->name, name) == 0) return domains[i];
    return NULL;
}

const task_domain *task_domain_by_id(uint32_t id) {
    for (int i = 0; i < N_DOMAINS; i++)
        if (domains[i]->id == id) return domains[i];
    return NULL;
}

static int fail(char *why, size_t why_cap, const char *fmt, ...) {
    if (why && why_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int task_write_feedback(char *feedback, size_t cap, const char *fmt, ...) {
    if (!feedback) return 0;
    if (cap == 0) return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(feedback, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        feedback[0] = 0;
        return -1;
    }
    return 0;
}

void task_knobs_default(const task_domain *d, int32_t knobs[TASK_MAX_KNOBS]) {
    for (int k = 0; k < TASK_MAX_KNOBS; k++) knobs[k] = k < d->n_knobs ? d->knobs[k].def : 0;
}

int task_knobs_check(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], char *why,
                     size_t why_cap) {
    for (int k = 0; k < TASK_MAX_KNOBS; k++) {
        if (k >= d->n_knobs) {
            if (knobs[k] != 0)
                return fail(why, why_cap, "%s: unused knob slot %d is %d, not 0", d->name, k,
                            (int)knobs[k]);
            continue;
        }
        const task_knob *kn = &d->knobs[k];
        if (knobs[k] < kn->min || knobs[k] > kn->max)
            return fail(why, why_cap, "%s: knob %s = %d is outside [%d, %d]", d->name, kn->name,
                        (int)knobs[k], (int)kn->min, (int)kn->max);
    }
    return 0;
}

static int knob_index(const task_domain *d, const char *name, size_t n) {
    for (int k = 0; k < d->n_knobs; k++)
        if (strlen(d->knobs[k].name) == n && strncmp(d->knobs[k].name, name, n) == 0) return k;
    return -1;
}

int task_knobs_parse(const task_domain *d, const char *spec, int32_t knobs[TASK_MAX_KNOBS],
                     char *why, size_t why_cap) {
    task_knobs_default(d, knobs);
    const char *p = spec ? spec : "";
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *name = p;
        while (*p && *p != '=' && *p != ',' && *p != ' ') p++;
        size_t name_len = (size_t)(p - name);
        while (*p == ' ') p++;
        if (*p != '=')
            return fail(why, why_cap, "%s knobs: expected name=value at \"%.*s\"", d->name,
                        (int)name_len, name);
        int k = knob_index(d, name, name_len);
        if (k < 0)
            return fail(why, why_cap, "%s knobs: unknown knob \"%.*s\"", d->name, (int)name_len, name);
        p++;
        while (*p == ' ') p++;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno == ERANGE || (*end && *end != ',' && *end != ' '))
            return fail(why, why_cap, "%s knobs: %s needs an integer value", d->name,
                        d->knobs[k].name);
        if (v < d->knobs[k].min || v > d->knobs[k].max)
            return fail(why, why_cap, "%s knobs: %s = %ld is outside [%d, %d]", d->name,
                        d->knobs[k].name, v, (int)d->knobs[k].min, (int)d->knobs[k].max);
        knobs[k] = (int32_t)v;
        p = end;
    }
    return 0;
}

/* ---- the partition ---- */

/* FNV-1a over the bytes, then a mixer so that the low bits used for the partition are well mixed. */
static uint64_t content_hash(const char *s, size_t n) {
    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001B3ULL;
    }
    return task_mix64(h);
}

int task_content_split(const task_domain *d, const task_instance *inst) {
    char request[TASK_REQUEST_CAP];
    int n = d->render_request(inst, request, sizeof request);
    if (n < 0) return -1;
    return content_hash(request, (size_t)n) % TASK_HELDOUT_MODULUS == 0 ? TASK_SPLIT_HELDOUT
                                                                       : TASK_SPLIT_TRAIN;
}

int task_instance_check(const task_instance *inst, char *why, size_t why_cap) {
    const task_domain *d = task_domain_by_id(inst->domain);
    if (!d) return fail(why, why_cap, "task instance: unknown domain id %u", (unsigned)inst->domain);
    if (inst->split != TASK_SPLIT_TRAIN && inst->split != TASK_SPLIT_HELDOUT)
        return fail(why, why_cap, "task instance: unknown split %u", (unsigned)inst->split);
    if (task_knobs_check(d, inst->knobs, why, why_cap)) return -1;
    int split = task_content_split(d, inst);
    if (split != (int)inst->split)
        return fail(why, why_cap, "task instance: %s seed %llu is marked %s but its problem is %s",
                    d->name, (unsigned long long)inst->seed, inst->split ? "held-out" : "train",
                    split ? "held-out" : "train");
    return 0;
}

int task_draw(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], int split,
              uint64_t stream_seed, uint64_t index, task_instance *out, char *why, size_t why_cap) {
    if (split != TASK_SPLIT_TRAIN && split != TASK_SPLIT_HELDOUT)
        return fail(why, why_cap, "task_draw: unknown split %d", split);
    if (task_knobs_check(d, knobs, why, why_cap)) return -1;
    task_instance inst = {.domain = d->id, .split = (uint32_t)split};
    memcpy(inst.knobs, knobs, sizeof inst.knobs);
    /* Candidate seeds for this (stream, index, split) are a splitmix64 sequence; the first whose
     * problem falls in the requested split is the instance (1/16 or 15/16 of candidates do). */
    task_rng candidates =
        task_rng_seeded(task_mix64(stream_seed ^ task_mix64(2 * index + (uint64_t)split + 1)));
    for (int t = 0; t < TASK_DRAW_TRIES; t++) {
        inst.seed = task_rng_next(&candidates);
        int s = task_content_split(d, &inst);
        if (s < 0) return fail(why, why_cap, "task_draw: %s could not render a request", d->name);
        if (s == split) {
            *out = inst;
            return 0;
        }
    }
    return fail(why, why_cap,
                "task_draw: no %s %s problem in %d seeds; the knobs allow too few distinct problems",
                d->name, split ? "held-out" : "train", TASK_DRAW_TRIES);
}
