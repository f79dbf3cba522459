/* The ExIt task buffer: insertion by score, replay sampling, prefixes, serialisation. */
#include "rl/task_buffer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char BUFFER_MAGIC[8] = "EXITBUF";
enum { BUFFER_VERSION = 1, HEADER_BYTES = 8 + 4 * 4 + 8 * 2 };

static int fail_code(int code, char *why, size_t why_cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_code(int code, char *why, size_t why_cap, const char *fmt, ...) {
    if (why && why_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_cap, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int in_unit_interval(float x) { return x >= 0.0f && x <= 1.0f; } /* false for NaN */

static int all_zero(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* ---- entries ---- */

void buffer_entry_from_task(buffer_entry *e, const task_instance *task) {
    memset(e, 0, sizeof *e);
    e->task = *task;
}

int buffer_entry_append(buffer_entry *e, const char *answer, size_t answer_len, float reward,
                      const char *feedback, size_t feedback_len, char *why, size_t why_cap) {
    if (e->depth < 0 || e->depth > BUFFER_MAX_DEPTH)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap, "buffer entry: depth %d out of [0, %d]",
                         (int)e->depth, BUFFER_MAX_DEPTH);
    if (e->depth == BUFFER_MAX_DEPTH)
        return fail_code(BUFFER_ERR_TOO_DEEP, why, why_cap,
                         "buffer entry: history already holds BUFFER_MAX_DEPTH = %d attempts",
                         BUFFER_MAX_DEPTH);
    if (!in_unit_interval(reward))
        return fail_code(BUFFER_ERR_INVALID, why, why_cap, "buffer entry: reward %g outside [0,1]",
                         (double)reward);
    if (answer_len && !answer)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap, "buffer entry: answer is NULL");
    if (answer_len > BUFFER_ANSWER_CAP)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                         "buffer entry: answer of %zu bytes exceeds BUFFER_ANSWER_CAP = %d", answer_len,
                         BUFFER_ANSWER_CAP);
    if (!feedback) feedback_len = 0;
    if (feedback_len > BUFFER_FEEDBACK_CAP)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                         "buffer entry: feedback of %zu bytes exceeds BUFFER_FEEDBACK_CAP = %d",
                         feedback_len, BUFFER_FEEDBACK_CAP);
    buffer_attempt *a = &e->history[e->depth];
    memset(a, 0, sizeof *a);
    a->reward = reward;
    a->answer_len = (uint16_t)answer_len;
    a->feedback_len = (uint16_t)feedback_len;
    if (answer_len) memcpy(a->answer, answer, answer_len);
    if (feedback_len) memcpy(a->feedback, feedback, feedback_len);
    e->depth++;
    return 0;
}

int buffer_entry_next_turn(buffer_entry *e, char *why, size_t why_cap) {
    if (e->depth < 1 || e->depth > BUFFER_MAX_DEPTH || e->turn < 0 || e->turn >= e->depth)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap, "buffer entry: no attempt at turn %d (depth %d)", (int)e->turn,
                         (int)e->depth);
    e->history[e->turn] = e->history[e->depth - 1];
    memset(e->history + e->turn + 1, 0, sizeof *e->history * (size_t)(BUFFER_MAX_DEPTH - e->turn - 1));
    e->turn++;
    e->depth = e->turn;
    return 0;
}

int buffer_entry_check(const buffer_entry *e, char *why, size_t why_cap) {
    if (!in_unit_interval(e->score))
        return fail_code(BUFFER_ERR_INVALID, why, why_cap, "score %g outside [0,1]", (double)e->score);
    if (e->depth > BUFFER_MAX_DEPTH)
        return fail_code(BUFFER_ERR_TOO_DEEP, why, why_cap, "depth %d exceeds BUFFER_MAX_DEPTH = %d",
                         (int)e->depth, BUFFER_MAX_DEPTH);
    if (e->depth < 0)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap, "depth %d is negative", (int)e->depth);
    if (e->turn < 0 || e->turn > e->depth)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap, "turn %d outside [0, depth %d]", (int)e->turn, (int)e->depth);
    for (int k = 0; k < BUFFER_MAX_DEPTH; k++) {
        const buffer_attempt *a = &e->history[k];
        if (k >= e->depth) {
            if (!all_zero((const char *)a, sizeof *a))
                return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                                 "unused attempt slot %d (depth %d) is not zero", k, (int)e->depth);
            continue;
        }
        if (!in_unit_interval(a->reward))
            return fail_code(BUFFER_ERR_INVALID, why, why_cap, "attempt %d: reward %g outside [0,1]",
                             k, (double)a->reward);
        if (a->answer_len > BUFFER_ANSWER_CAP)
            return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                             "attempt %d: answer length %u exceeds %d", k, (unsigned)a->answer_len,
                             BUFFER_ANSWER_CAP);
        if (a->feedback_len > BUFFER_FEEDBACK_CAP)
            return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                             "attempt %d: feedback length %u exceeds %d", k,
                             (unsigned)a->feedback_len, BUFFER_FEEDBACK_CAP);
        if (!all_zero(a->answer + a->answer_len, BUFFER_ANSWER_CAP - a->answer_len) ||
            !all_zero(a->feedback + a->feedback_len, BUFFER_FEEDBACK_CAP - a->feedback_len))
            return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                             "attempt %d: bytes past the answer or feedback are not zero", k);
    }
    if (task_instance_check(&e->task, why, why_cap)) return BUFFER_ERR_INVALID;
    return 0;
}

/* ---- options, lifetime ---- */

void task_buffer_options_default(task_buffer_options *o) {
    *o = (task_buffer_options){.capacity = 512,
                               .min_size = 128,
                               .p_replay = 0.5f,
                               .kappa = 1.0f,
                               .priority = BUFFER_PRIORITY_SOFTMAX,
                               .rank_beta = 0.1f,
                               .staleness = 0.0f};
}

int task_buffer_options_check(const task_buffer_options *o, char *why, size_t why_cap) {
    if (o->capacity < 1 || o->capacity > BUFFER_MAX_CAPACITY)
        return fail_code(-1, why, why_cap, "exit buffer: capacity %d outside [1, %d]", o->capacity,
                         BUFFER_MAX_CAPACITY);
    if (o->min_size < 0 || o->min_size > o->capacity)
        return fail_code(-1, why, why_cap, "exit buffer: min_size %d outside [0, capacity %d]",
                         o->min_size, o->capacity);
    if (!in_unit_interval(o->p_replay))
        return fail_code(-1, why, why_cap, "exit buffer: p_replay %g outside [0,1]",
                         (double)o->p_replay);
    if (!(o->kappa >= 0.0f && isfinite(o->kappa)))
        return fail_code(-1, why, why_cap, "exit buffer: kappa %g must be finite and >= 0",
                         (double)o->kappa);
    if (o->priority != BUFFER_PRIORITY_SOFTMAX && o->priority != BUFFER_PRIORITY_RANK)
        return fail_code(-1, why, why_cap,
                         "exit buffer: priority %d is neither softmax (%d) nor rank (%d)",
                         o->priority, BUFFER_PRIORITY_SOFTMAX, BUFFER_PRIORITY_RANK);
    if (!(o->rank_beta > 0.0f && o->rank_beta <= 100.0f))
        return fail_code(-1, why, why_cap, "exit buffer: rank_beta %g outside (0, 100]",
                         (double)o->rank_beta);
    if (!in_unit_interval(o->staleness))
        return fail_code(-1, why, why_cap, "exit buffer: staleness %g outside [0,1]",
                         (double)o->staleness);
    return 0;
}

int task_buffer_init(task_buffer *b, const task_buffer_options *o, char *why, size_t why_cap) {
    memset(b, 0, sizeof *b);
    if (task_buffer_options_check(o, why, why_cap)) return -1;
    b->opt = *o;
    size_t n = (size_t)o->capacity;
    b->entries = calloc(n, sizeof *b->entries);
    b->prob = malloc(n * sizeof *b->prob);
    b->sorted = malloc(n * sizeof *b->sorted);
    if (!b->entries || !b->prob || !b->sorted) {
        task_buffer_free(b);
        return fail_code(-1, why, why_cap, "exit buffer: out of memory for %zu entries", n);
    }
    return 0;
}

void task_buffer_free(task_buffer *b) {
    free(b->entries);
    free(b->prob);
    free(b->sorted);
    memset(b, 0, sizeof *b);
}

const buffer_entry *task_buffer_entry(const task_buffer *b, int index) {
    return index >= 0 && index < b->size ? &b->entries[index] : NULL;
}

void task_buffer_get_stats(const task_buffer *b, task_buffer_stats *s) {
    memset(s, 0, sizeof *s);
    s->size = b->size;
    s->capacity = b->opt.capacity;
    if (!b->size) return;
    double sum_s = 0, sum_d = 0;
    s->min_score = s->max_score = b->entries[0].score;
    for (int i = 0; i < b->size; i++) {
        const buffer_entry *e = &b->entries[i];
        sum_s += e->score;
        sum_d += e->depth;
        if (e->score < s->min_score) s->min_score = e->score;
        if (e->score > s->max_score) s->max_score = e->score;
        if (e->depth > s->max_depth) s->max_depth = e->depth;
    }
    s->mean_score = sum_s / b->size;
    s->mean_depth = sum_d / b->size;
}

/* ---- replay ---- */

int task_buffer_should_replay(const task_buffer *b, rng_state *rng) {
    float u = rng_uniform(rng);
    int min_size = b->opt.min_size > 1 ? b->opt.min_size : 1;
    return b->size >= min_size && u < b->opt.p_replay;
}

static int cmp_float_desc(const void *pa, const void *pb) {
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a < b) - (a > b);
}

/* Entries with a score strictly greater than s, in sorted[0..n) (descending). */
static int count_greater(const float *sorted, int n, float s) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (sorted[mid] > s) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The score part of the distribution, normalised, into p[0..size). */
static void score_probabilities(const task_buffer *b, double *p) {
    int n = b->size;
    double total = 0;
    if (b->opt.priority == BUFFER_PRIORITY_RANK) {
        for (int i = 0; i < n; i++) b->sorted[i] = b->entries[i].score;
        qsort(b->sorted, (size_t)n, sizeof *b->sorted, cmp_float_desc);
        double inv_beta = 1.0 / b->opt.rank_beta;
        for (int i = 0; i < n; i++) {
            int rank = 1 + count_greater(b->sorted, n, b->entries[i].score);
            p[i] = exp(-inv_beta * log((double)rank));
            total += p[i];
        }
    } else {
        /* Shifted by the largest score so exp never overflows; the largest weight is exactly 1. */
        double s_max = b->entries[0].score;
        for (int i = 1; i < n; i++)
            if (b->entries[i].score > s_max) s_max = b->entries[i].score;
        for (int i = 0; i < n; i++) {
            p[i] = exp((double)b->opt.kappa * ((double)b->entries[i].score - s_max));
            total += p[i];
        }
    }
    for (int i = 0; i < n; i++) p[i] /= total;
}

int task_buffer_probabilities(const task_buffer *b, uint64_t iteration, double *p) {
    if (b->size == 0 || iteration < b->clock) return -1;
    int n = b->size;
    score_probabilities(b, p);
    double rho = b->opt.staleness;
    if (rho == 0.0) return 0;
    /* last_sampled <= clock <= iteration, so every staleness is >= 0. */
    double total = 0;
    for (int i = 0; i < n; i++) total += (double)(iteration - b->entries[i].last_sampled);
    for (int i = 0; i < n; i++) {
        double stale = total > 0 ? (double)(iteration - b->entries[i].last_sampled) / total
                                 : 1.0 / n;
        p[i] = (1.0 - rho) * p[i] + rho * stale;
    }
    return 0;
}

int task_buffer_sample(task_buffer *b, rng_state *rng, uint64_t iteration) {
    if (task_buffer_probabilities(b, iteration, b->prob)) return -1;
    double u = (double)(rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
    double cum = 0;
    int pick = -1;
    for (int i = 0; i < b->size; i++) {
        if (b->prob[i] <= 0) continue;
        cum += b->prob[i];
        pick = i;
        if (u < cum) break;
    }
    /* pick is the first index whose cumulative sum passes u, or the last possible one when
     * rounding left the sum just short of u. */
    b->entries[pick].last_sampled = iteration;
    b->clock = iteration;
    return pick;
}

int task_buffer_prefix(const task_buffer *b, int index, rng_state *rng) {
    const buffer_entry *e = task_buffer_entry(b, index);
    if (!e) return -1;
    if (e->depth == 0) return 0;
    return 1 + (int)rng_below(rng, (uint64_t)e->depth);
}

int task_buffer_copy_prefix(const task_buffer *b, int index, int n_keep, buffer_entry *out) {
    const buffer_entry *e = task_buffer_entry(b, index);
    if (!e || n_keep < 0 || n_keep > e->depth) return -1;
    buffer_entry_from_task(out, &e->task);
    out->score = e->score;
    out->depth = (int16_t)n_keep;
    out->turn = (int16_t)(n_keep == 0 ? 0 : e->turn < n_keep - 1 ? e->turn : n_keep - 1);
    memcpy(out->history, e->history, (size_t)n_keep * sizeof *out->history);
    return 0;
}

int task_buffer_update_score(task_buffer *b, int index, float score) {
    if (index < 0 || index >= b->size || !in_unit_interval(score)) return -1;
    b->entries[index].score = score;
    return 0;
}

int task_buffer_insert(task_buffer *b, const buffer_entry *e, uint64_t iteration, char *why,
                       size_t why_cap) {
    if (iteration < b->clock)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                         "exit buffer insert: iteration %llu is before the clock %llu",
                         (unsigned long long)iteration, (unsigned long long)b->clock);
    char reason[200];
    int rc = buffer_entry_check(e, reason, sizeof reason);
    if (rc) return fail_code(rc, why, why_cap, "exit buffer insert: %s", reason);
    if (e->task.split != TASK_SPLIT_TRAIN)
        return fail_code(BUFFER_ERR_INVALID, why, why_cap,
                         "exit buffer insert: a held-out task; the buffer holds training tasks only");
    buffer_entry copy = *e; /* e may point into the buffer itself */
    int slot = b->size;
    if (b->size == b->opt.capacity) {
        slot = 0;
        for (int i = 1; i < b->size; i++) {
            const buffer_entry *c = &b->entries[i], *low = &b->entries[slot];
            if (c->score < low->score || (c->score == low->score && c->serial < low->serial))
                slot = i;
        }
        if (copy.score < b->entries[slot].score) return BUFFER_INSERT_REJECTED;
    } else {
        b->size++;
    }
    b->entries[slot] = copy;
    b->entries[slot].serial = b->next_serial++;
    b->entries[slot].last_sampled = iteration;
    b->clock = iteration;
    return slot;
}

/* ---- serialisation ---- */

size_t task_buffer_serialized_size(const task_buffer *b) {
    return HEADER_BYTES + (size_t)b->size * sizeof(buffer_entry);
}

size_t task_buffer_serialize(const task_buffer *b, void *dst, size_t cap) {
    size_t n = task_buffer_serialized_size(b);
    if (cap < n) return 0;
    unsigned char *p = dst;
    uint32_t head[4] = {BUFFER_VERSION, (uint32_t)sizeof(buffer_entry), (uint32_t)b->opt.capacity,
                        (uint32_t)b->size};
    memcpy(p, BUFFER_MAGIC, 8);
    memcpy(p + 8, head, sizeof head);
    memcpy(p + 24, &b->next_serial, 8);
    memcpy(p + 32, &b->clock, 8);
    memcpy(p + HEADER_BYTES, b->entries, (size_t)b->size * sizeof(buffer_entry));
    return n;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int task_buffer_deserialize(task_buffer *b, const void *src, size_t n, char *why, size_t why_cap) {
    const unsigned char *p = src;
    if (!b->entries) return fail_code(-1, why, why_cap, "exit buffer: not initialised");
    if (n < HEADER_BYTES)
        return fail_code(-1, why, why_cap,
                         "exit buffer data truncated: %zu bytes, the header alone needs %d", n,
                         HEADER_BYTES);
    if (memcmp(p, BUFFER_MAGIC, 8) != 0)
        return fail_code(-1, why, why_cap, "exit buffer data: bad magic (not an exit buffer)");
    uint32_t head[4];
    uint64_t next_serial, clock;
    memcpy(head, p + 8, sizeof head);
    memcpy(&next_serial, p + 24, 8);
    memcpy(&clock, p + 32, 8);
    if (head[0] != BUFFER_VERSION)
        return fail_code(-1, why, why_cap, "exit buffer data: version %u, this build reads %d",
                         (unsigned)head[0], BUFFER_VERSION);
    if (head[1] != sizeof(buffer_entry))
        return fail_code(-1, why, why_cap,
                         "exit buffer data: entries of %u bytes, this build's are %zu (a different "
                         "BUFFER_MAX_DEPTH or cap)",
                         (unsigned)head[1], sizeof(buffer_entry));
    if (head[2] != (uint32_t)b->opt.capacity)
        return fail_code(-1, why, why_cap,
                         "exit buffer data: capacity %u, but the buffer is configured for %d",
                         (unsigned)head[2], b->opt.capacity);
    uint32_t size = head[3];
    if (size > head[2])
        return fail_code(-1, why, why_cap, "exit buffer data: size %u exceeds capacity %u",
                         (unsigned)size, (unsigned)head[2]);
    size_t expected = HEADER_BYTES + (size_t)size * sizeof(buffer_entry);
    if (n != expected)
        return fail_code(-1, why, why_cap,
                         "exit buffer data: %zu bytes, %u entries need exactly %zu (%s)", n,
                         (unsigned)size, expected, n < expected ? "truncated" : "trailing bytes");
    if (next_serial < size)
        return fail_code(-1, why, why_cap, "exit buffer data: next serial %llu is below the size %u",
                         (unsigned long long)next_serial, (unsigned)size);
    const unsigned char *entries = p + HEADER_BYTES;
    uint64_t *serials = malloc(sizeof(uint64_t) * (size ? size : 1));
    if (!serials) return fail_code(-1, why, why_cap, "exit buffer data: out of memory");
    for (uint32_t i = 0; i < size; i++) {
        buffer_entry e; /* a copy: src need not be aligned */
        memcpy(&e, entries + (size_t)i * sizeof e, sizeof e);
        char reason[200];
        int bad = -1;
        if (buffer_entry_check(&e, reason, sizeof reason))
            fail_code(-1, why, why_cap, "exit buffer data: entry %u: %s", (unsigned)i, reason);
        else if (e.task.split != TASK_SPLIT_TRAIN)
            fail_code(-1, why, why_cap,
                      "exit buffer data: entry %u: a held-out task; the buffer holds training tasks only",
                      (unsigned)i);
        else if (e.serial >= next_serial)
            fail_code(-1, why, why_cap, "exit buffer data: entry %u: serial %llu not below next serial %llu",
                      (unsigned)i, (unsigned long long)e.serial, (unsigned long long)next_serial);
        else if (e.last_sampled > clock)
            fail_code(-1, why, why_cap,
                      "exit buffer data: entry %u: last sampled at iteration %llu, after the clock %llu",
                      (unsigned)i, (unsigned long long)e.last_sampled, (unsigned long long)clock);
        else
            bad = 0;
        if (bad) {
            free(serials);
            return -1;
        }
        serials[i] = e.serial;
    }
    qsort(serials, size, sizeof *serials, cmp_u64);
    for (uint32_t i = 1; i < size; i++)
        if (serials[i] == serials[i - 1]) {
            fail_code(-1, why, why_cap, "exit buffer data: two entries have serial %llu (serials are unique)",
                      (unsigned long long)serials[i]);
            free(serials);
            return -1;
        }
    free(serials);
    memcpy(b->entries, entries, (size_t)size * sizeof(buffer_entry));
    b->size = (int)size;
    b->next_serial = next_serial;
    b->clock = clock;
    return 0;
}
