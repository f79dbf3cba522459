/* The ExIt task buffer: option checks; histories capped without truncation; the top-N replacement
 * rule (by hand and against a reference over random streams); inherited scores; replay gating by
 * B_min and p (binomial bound); prefix lengths uniform (chi-square); sampling frequencies against
 * softmax(kappa·S), rank and staleness formulas computed here independently (chi-square at 0.999,
 * Wilson-Hilferty quantile, fixed seeds); serialisation bit-exact and resumable; corrupted and
 * fuzzed serialisations rejected with a clear message, the buffer unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rl/task_buffer.h"
#include "model/rng.h"
#include "tasks/task.h"
#include "test_util.h"

/* The 0.999 quantile of chi-square with k degrees of freedom (Wilson-Hilferty). */
static double chi2_quantile_999(int k) {
    const double z = 3.090232306167813; /* standard normal 0.999 quantile */
    double a = 2.0 / (9.0 * k);
    double c = 1.0 - a + z * sqrt(a);
    return k * c * c * c;
}

/* Pearson statistic of counts against expected counts; cells with expected < 1e-9 must be empty
 * (an observation there adds infinity). */
static double chi2_stat(const long *obs, const double *expected, int n) {
    double x = 0;
    for (int i = 0; i < n; i++) {
        if (expected[i] < 1e-9) {
            if (obs[i]) return INFINITY;
            continue;
        }
        double d = (double)obs[i] - expected[i];
        x += d * d / expected[i];
    }
    return x;
}

static task_instance make_task(uint64_t index) {
    const task_domain *d = task_domain_find("arith");
    int32_t knobs[TASK_MAX_KNOBS];
    task_knobs_default(d, knobs);
    task_instance t;
    char why[200];
    if (task_draw(d, knobs, TASK_SPLIT_TRAIN, 77, index, &t, why, sizeof why)) {
        fprintf(stderr, "task_draw: %s\n", why);
        exit(1);
    }
    return t;
}

/* An entry for task index with `depth` short attempts ("a<k>", reward k/16, feedback on odd k). */
static buffer_entry make_entry(uint64_t index, float score, int depth) {
    buffer_entry e;
    task_instance t = make_task(index);
    buffer_entry_from_task(&e, &t);
    e.score = score;
    for (int k = 0; k < depth; k++) {
        char ans[16], fb[16];
        int al = snprintf(ans, sizeof ans, "a%d", k), fl = snprintf(fb, sizeof fb, "f%d", k);
        if (buffer_entry_append(&e, ans, (size_t)al, (float)k / 16.0f, k % 2 ? fb : NULL,
                              (size_t)fl, NULL, 0)) {
            fprintf(stderr, "make_entry: append failed\n");
            exit(1);
        }
    }
    return e;
}

static task_buffer_options options(int capacity, int min_size, float p, float kappa) {
    task_buffer_options o;
    task_buffer_options_default(&o);
    o.capacity = capacity;
    o.min_size = min_size;
    o.p_replay = p;
    o.kappa = kappa;
    return o;
}

static void init_or_die(task_buffer *b, const task_buffer_options *o) {
    char why[200];
    if (task_buffer_init(b, o, why, sizeof why)) {
        fprintf(stderr, "task_buffer_init: %s\n", why);
        exit(1);
    }
}

/* Serialised bytes of b, malloc'ed; *n gets the size. */
static unsigned char *serialize(const task_buffer *b, size_t *n) {
    *n = task_buffer_serialized_size(b);
    unsigned char *p = malloc(*n);
    size_t w = task_buffer_serialize(b, p, *n);
    CHECK(w == *n, "serialize wrote %zu of %zu", w, *n);
    return p;
}

static void test_options(void) {
    task_buffer_options o;
    task_buffer_options_default(&o);
    char why[200] = "";
    CHECK(task_buffer_options_check(&o, why, sizeof why) == 0, "defaults: %s", why);
    CHECK(o.capacity == 512 && o.min_size == 128 && o.p_replay == 0.5f && o.kappa == 1.0f &&
              o.priority == BUFFER_PRIORITY_SOFTMAX && o.staleness == 0.0f,
          "paper defaults");
    struct {
        const char *field;
        task_buffer_options o;
    } bad[] = {
        {"capacity", {.capacity = 0, .min_size = 0, .p_replay = 0.5f, .kappa = 1, .rank_beta = 0.1f}},
        {"capacity", {.capacity = BUFFER_MAX_CAPACITY + 1, .p_replay = 0.5f, .kappa = 1, .rank_beta = 0.1f}},
        {"min_size", {.capacity = 8, .min_size = 9, .p_replay = 0.5f, .kappa = 1, .rank_beta = 0.1f}},
        {"min_size", {.capacity = 8, .min_size = -1, .p_replay = 0.5f, .kappa = 1, .rank_beta = 0.1f}},
        {"p_replay", {.capacity = 8, .p_replay = 1.5f, .kappa = 1, .rank_beta = 0.1f}},
        {"p_replay", {.capacity = 8, .p_replay = NAN, .kappa = 1, .rank_beta = 0.1f}},
        {"kappa", {.capacity = 8, .p_replay = 0.5f, .kappa = -1, .rank_beta = 0.1f}},
        {"kappa", {.capacity = 8, .p_replay = 0.5f, .kappa = INFINITY, .rank_beta = 0.1f}},
        {"priority", {.capacity = 8, .p_replay = 0.5f, .kappa = 1, .priority = 2, .rank_beta = 0.1f}},
        {"rank_beta", {.capacity = 8, .p_replay = 0.5f, .kappa = 1, .rank_beta = 0}},
        {"staleness", {.capacity = 8, .p_replay = 0.5f, .kappa = 1, .rank_beta = 0.1f, .staleness = 1.01f}},
        {"staleness", {.capacity = 8, .p_replay = 0.5f, .kappa = 1, .rank_beta = 0.1f, .staleness = NAN}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        CHECK(task_buffer_options_check(&bad[i].o, why, sizeof why) == -1 &&
                  strstr(why, bad[i].field),
              "bad %s accepted or message '%s'", bad[i].field, why);
        task_buffer b;
        CHECK(task_buffer_init(&b, &bad[i].o, why, sizeof why) == -1 && b.entries == NULL,
              "init with bad %s", bad[i].field);
    }
}

static void test_entry_append(void) {
    char why[200] = "";
    task_instance t = make_task(0);
    buffer_entry e;
    buffer_entry_from_task(&e, &t);
    CHECK(e.depth == 0 && e.score == 0 && memcmp(&e.task, &t, sizeof t) == 0, "from_task");
    CHECK(buffer_entry_check(&e, why, sizeof why) == 0, "base entry valid: %s", why);
    char big[BUFFER_ANSWER_CAP + 1];
    memset(big, 'x', sizeof big);
    buffer_entry before = e;
    CHECK(buffer_entry_append(&e, big, sizeof big, 0.5f, NULL, 0, why, sizeof why) ==
                  BUFFER_ERR_INVALID && strstr(why, "answer") &&
              memcmp(&e, &before, sizeof e) == 0,
          "over-long answer rejected, not truncated: %s", why);
    CHECK(buffer_entry_append(&e, big, BUFFER_FEEDBACK_CAP + 1, 0.5f, big, BUFFER_FEEDBACK_CAP + 1, why,
                            sizeof why) == BUFFER_ERR_INVALID &&
              strstr(why, "feedback") && memcmp(&e, &before, sizeof e) == 0,
          "over-long feedback rejected: %s", why);
    CHECK(buffer_entry_append(&e, "1", 1, 1.5f, NULL, 0, why, sizeof why) == BUFFER_ERR_INVALID &&
              strstr(why, "reward"),
          "reward out of range: %s", why);
    CHECK(buffer_entry_append(&e, "1", 1, NAN, NULL, 0, why, sizeof why) == BUFFER_ERR_INVALID,
          "NaN reward");
    /* Full-size answers and feedback fit exactly, any bytes (including NUL) kept. */
    big[3] = 0;
    CHECK(buffer_entry_append(&e, big, BUFFER_ANSWER_CAP, 1.0f, big, BUFFER_FEEDBACK_CAP, why,
                            sizeof why) == 0,
          "%s", why);
    CHECK(e.depth == 1 && e.history[0].answer_len == BUFFER_ANSWER_CAP &&
              memcmp(e.history[0].answer, big, BUFFER_ANSWER_CAP) == 0 &&
              e.history[0].feedback_len == BUFFER_FEEDBACK_CAP && e.history[0].reward == 1.0f,
          "attempt stored");
    for (int k = 1; k < BUFFER_MAX_DEPTH; k++)
        CHECK(buffer_entry_append(&e, "7", 1, 0.25f, "fb", 2, why, sizeof why) == 0, "append %d", k);
    CHECK(e.depth == BUFFER_MAX_DEPTH, "depth %d", (int)e.depth);
    CHECK(memcmp(e.history[5].answer, "7", 1) == 0 && e.history[5].answer_len == 1 &&
              memcmp(e.history[5].feedback, "fb", 2) == 0 && e.history[5].feedback_len == 2,
          "attempt 5");
    before = e;
    CHECK(buffer_entry_append(&e, "8", 1, 0.5f, NULL, 0, why, sizeof why) == BUFFER_ERR_TOO_DEEP &&
              strstr(why, "BUFFER_MAX_DEPTH") && memcmp(&e, &before, sizeof e) == 0,
          "17th attempt rejected: %s", why);
    CHECK(buffer_entry_check(&e, why, sizeof why) == 0, "full entry valid: %s", why);
}

/* Scores held by the buffer at each index, for hand-worked checks. */
static int holds(const task_buffer *b, const float *want, int n) {
    if (b->size != n) return 0;
    for (int i = 0; i < n; i++)
        if (task_buffer_entry(b, i)->score != want[i]) return 0;
    return 1;
}

static void test_insert_rule(void) {
    task_buffer b;
    task_buffer_options o = options(4, 0, 0.5f, 1);
    init_or_die(&b, &o);
    char why[200] = "";
    float s0[] = {0.5f, 0.2f, 0.8f, 0.2f};
    for (int i = 0; i < 4; i++) {
        buffer_entry e = make_entry((uint64_t)i, s0[i], 1);
        CHECK(task_buffer_insert(&b, &e, 0, why, sizeof why) == i, "append %d: %s", i, why);
    }
    CHECK(holds(&b, s0, 4), "filled");
    buffer_entry low = make_entry(10, 0.1f, 2);
    CHECK(task_buffer_insert(&b, &low, 0, why, sizeof why) == BUFFER_INSERT_REJECTED,
          "below the lowest rejected");
    CHECK(holds(&b, s0, 4) && b.next_serial == 4, "rejection changes nothing");
    /* Equal to the lowest: accepted, replacing the older of the two 0.2 entries (index 1). */
    buffer_entry tie = make_entry(11, 0.2f, 3);
    CHECK(task_buffer_insert(&b, &tie, 1, why, sizeof why) == 1, "tie replaces the oldest lowest");
    CHECK(holds(&b, s0, 4) && task_buffer_entry(&b, 1)->depth == 3 &&
              task_buffer_entry(&b, 1)->serial == 4 && task_buffer_entry(&b, 1)->last_sampled == 1,
          "the newcomer sits at index 1");
    /* Now the oldest 0.2 is index 3 (serial 3). */
    buffer_entry tie2 = make_entry(12, 0.2f, 4);
    CHECK(task_buffer_insert(&b, &tie2, 1, why, sizeof why) == 3, "next tie replaces index 3");
    buffer_entry high = make_entry(13, 0.9f, 1);
    CHECK(task_buffer_insert(&b, &high, 2, why, sizeof why) == 1, "high replaces the oldest 0.2");
    float s1[] = {0.5f, 0.9f, 0.8f, 0.2f};
    CHECK(holds(&b, s1, 4) && task_buffer_entry(&b, 3)->depth == 4, "after replacements");
    buffer_entry mid = make_entry(14, 0.3f, 1);
    CHECK(task_buffer_insert(&b, &mid, 2, why, sizeof why) == 3, "0.3 replaces the last 0.2");
    float s2[] = {0.5f, 0.9f, 0.8f, 0.3f};
    CHECK(holds(&b, s2, 4), "top 4 of everything inserted");
    task_buffer_free(&b);
}

typedef struct {
    float score;
    uint64_t serial;
} keyed;

static int cmp_keyed_desc(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return a->serial < b->serial ? 1 : -1; /* newer ahead on ties */
}

static int cmp_u64(const void *pa, const void *pb) {
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

/* After each insertion of a random stream (coarse scores, so ties are common) the held serials
 * must be the top N of everything inserted so far by (score, serial). */
static void test_insert_top_n_random(void) {
    enum { N = 16, STREAM = 600 };
    task_buffer b;
    task_buffer_options o = options(N, 0, 0.5f, 1);
    init_or_die(&b, &o);
    keyed all[STREAM];
    uint64_t stream_pos[STREAM]; /* serial -> position in the stream (serials count acceptances) */
    rng_state r;
    rng_seed(&r, 5);
    buffer_entry e = make_entry(3, 0, 2);
    int mismatches = 0, rejected = 0, wrong_code = 0;
    for (int t = 0; t < STREAM; t++) {
        e.score = (float)rng_below(&r, 11) / 10.0f;
        int rc = task_buffer_insert(&b, &e, (uint64_t)t, NULL, 0);
        all[t] = (keyed){e.score, (uint64_t)t};
        if (rc >= 0) stream_pos[task_buffer_entry(&b, rc)->serial] = (uint64_t)t;
        rejected += rc == BUFFER_INSERT_REJECTED;
        if (!(rc == BUFFER_INSERT_REJECTED || (rc >= 0 && rc < N))) wrong_code++;
        keyed ref[STREAM];
        memcpy(ref, all, sizeof(keyed) * (size_t)(t + 1));
        qsort(ref, (size_t)(t + 1), sizeof(keyed), cmp_keyed_desc);
        int n = t + 1 < N ? t + 1 : N;
        uint64_t want[N], have[N];
        for (int i = 0; i < n; i++) want[i] = ref[i].serial;
        for (int i = 0; i < b.size; i++) have[i] = stream_pos[task_buffer_entry(&b, i)->serial];
        qsort(want, (size_t)n, sizeof(uint64_t), cmp_u64);
        qsort(have, (size_t)b.size, sizeof(uint64_t), cmp_u64);
        if (b.size != n || memcmp(want, have, sizeof(uint64_t) * (size_t)n) != 0) mismatches++;
    }
    CHECK(mismatches == 0 && wrong_code == 0, "%d of %d steps differ from the top-N reference",
          mismatches, STREAM);
    CHECK(rejected > 100, "the stream exercised rejection (%d)", rejected);
    task_buffer_free(&b);
}

static void test_insert_invalid(void) {
    task_buffer b;
    task_buffer_options o = options(4, 0, 0.5f, 1);
    init_or_die(&b, &o);
    char why[200] = "";
    buffer_entry good = make_entry(1, 0.5f, 2);
    CHECK(task_buffer_insert(&b, &good, 5, why, sizeof why) == 0, "%s", why);
    size_t n0;
    unsigned char *s0 = serialize(&b, &n0);
    struct {
        const char *what, *msg;
        int code;
        buffer_entry e;
    } bad[6];
    for (int i = 0; i < 6; i++) bad[i].e = good, bad[i].code = BUFFER_ERR_INVALID;
    bad[0].what = "score > 1", bad[0].msg = "score", bad[0].e.score = 1.25f;
    bad[1].what = "NaN score", bad[1].msg = "score", bad[1].e.score = NAN;
    bad[2].what = "depth 17", bad[2].msg = "BUFFER_MAX_DEPTH", bad[2].e.depth = BUFFER_MAX_DEPTH + 1,
    bad[2].code = BUFFER_ERR_TOO_DEEP;
    bad[3].what = "bad instance", bad[3].msg = "domain", bad[3].e.task.domain = 99;
    bad[4].what = "garbage past the answer", bad[4].msg = "not zero",
    bad[4].e.history[1].answer[100] = 'z';
    bad[5].what = "reward", bad[5].msg = "reward", bad[5].e.history[0].reward = -0.5f;
    for (int i = 0; i < 6; i++) {
        why[0] = 0;
        int rc = task_buffer_insert(&b, &bad[i].e, 5, why, sizeof why);
        CHECK(rc == bad[i].code && strstr(why, bad[i].msg), "%s: rc %d, '%s'", bad[i].what, rc, why);
    }
    CHECK(task_buffer_insert(&b, &good, 4, why, sizeof why) == BUFFER_ERR_INVALID &&
              strstr(why, "iteration"),
          "iteration before the clock: %s", why);
    buffer_entry heldout = good;
    const task_domain *d = task_domain_find("arith");
    int32_t knobs[TASK_MAX_KNOBS];
    task_knobs_default(d, knobs);
    CHECK(task_draw(d, knobs, TASK_SPLIT_HELDOUT, 77, 0, &heldout.task, why, sizeof why) == 0, "%s",
          why);
    CHECK(buffer_entry_check(&heldout, why, sizeof why) == 0, "a valid held-out entry: %s", why);
    CHECK(task_buffer_insert(&b, &heldout, 5, why, sizeof why) == BUFFER_ERR_INVALID &&
              strstr(why, "held-out"),
          "held-out task inserted: %s", why);
    size_t n1;
    unsigned char *s1 = serialize(&b, &n1);
    CHECK(n0 == n1 && memcmp(s0, s1, n0) == 0, "rejected inserts left the buffer unchanged");
    /* Re-inserting an entry from the buffer itself (aliasing) is a plain copy. */
    CHECK(task_buffer_insert(&b, task_buffer_entry(&b, 0), 5, why, sizeof why) == 1 &&
              task_buffer_entry(&b, 1)->serial == 1 &&
              memcmp(task_buffer_entry(&b, 1)->history, good.history, sizeof good.history) == 0,
          "self insert: %s", why);
    free(s0);
    free(s1);
    task_buffer_free(&b);
}

/* An expansion carries its parent's score; update_score sets the sampled entry's new score. */
static void test_inherited_scores(void) {
    task_buffer b;
    task_buffer_options o = options(8, 0, 0.5f, 1);
    init_or_die(&b, &o);
    char why[200] = "";
    buffer_entry parent = make_entry(2, 0.375f, 5);
    int pi = task_buffer_insert(&b, &parent, 0, why, sizeof why);
    CHECK(pi == 0 && task_buffer_entry(&b, 0)->score == 0.375f, "stored with its given S");
    buffer_entry child;
    CHECK(task_buffer_copy_prefix(&b, pi, 3, &child) == 0, "copy prefix");
    CHECK(child.depth == 3 && child.score == 0.375f && child.serial == 0 &&
              memcmp(&child.task, &parent.task, sizeof child.task) == 0 &&
              memcmp(child.history, parent.history, 3 * sizeof(buffer_attempt)) == 0 &&
              child.history[3].answer_len == 0 && child.history[3].reward == 0,
          "prefix copy holds attempts 0..2 only");
    CHECK(task_buffer_copy_prefix(&b, pi, 6, &child) == -1 &&
              task_buffer_copy_prefix(&b, pi, -1, &child) == -1 &&
              task_buffer_copy_prefix(&b, 1, 0, &child) == -1,
          "prefix out of range");
    task_buffer_copy_prefix(&b, pi, 3, &child);
    CHECK(buffer_entry_append(&child, "42", 2, 1.0f, NULL, 0, why, sizeof why) == 0, "%s", why);
    int ci = task_buffer_insert(&b, &child, 1, why, sizeof why);
    CHECK(ci == 1 && task_buffer_entry(&b, ci)->score == 0.375f &&
              task_buffer_entry(&b, ci)->depth == 4 &&
              memcmp(task_buffer_entry(&b, ci)->history[3].answer, "42", 2) == 0,
          "expansion inserted with the inherited S");
    CHECK(task_buffer_update_score(&b, pi, 0.0625f) == 0 &&
              task_buffer_entry(&b, pi)->score == 0.0625f &&
              task_buffer_entry(&b, ci)->score == 0.375f,
          "update_score changes only the sampled entry");
    CHECK(task_buffer_update_score(&b, pi, 1.5f) == -1 && task_buffer_update_score(&b, pi, NAN) == -1 &&
              task_buffer_update_score(&b, 2, 0.5f) == -1 && task_buffer_update_score(&b, -1, 0.5f) == -1 &&
              task_buffer_entry(&b, pi)->score == 0.0625f,
          "bad updates rejected");
    task_buffer_free(&b);
}

static void test_replay(void) {
    enum { B_MIN = 5 };
    task_buffer b;
    task_buffer_options o = options(16, B_MIN, 1.0f, 1);
    init_or_die(&b, &o);
    rng_state r;
    rng_seed(&r, 11);
    for (int i = 0; i < B_MIN; i++) {
        int replays = 0;
        for (int t = 0; t < 5000; t++) replays += task_buffer_should_replay(&b, &r);
        CHECK(replays == 0, "size %d < B_min %d replayed %d times with p = 1", b.size, B_MIN, replays);
        buffer_entry e = make_entry((uint64_t)i, 0.5f, 1);
        task_buffer_insert(&b, &e, 0, NULL, 0);
    }
    int replays = 0;
    for (int t = 0; t < 5000; t++) replays += task_buffer_should_replay(&b, &r);
    CHECK(replays == 5000, "size = B_min with p = 1: %d of 5000", replays);
    /* Exactly one uniform drawn per call. */
    rng_state r2 = r;
    task_buffer_should_replay(&b, &r);
    rng_uniform(&r2);
    CHECK(memcmp(&r, &r2, sizeof r) == 0, "one draw per call");
    const float ps[] = {0.0f, 0.1f, 0.5f, 0.85f};
    for (int k = 0; k < 4; k++) {
        b.opt.p_replay = ps[k];
        const long M = 200000;
        long c = 0;
        for (long t = 0; t < M; t++) c += task_buffer_should_replay(&b, &r);
        double mean = M * (double)ps[k], sd = sqrt(M * (double)ps[k] * (1.0 - ps[k]));
        printf("replay p %.2f: %ld of %ld (expected %.0f, sd %.0f)\n", (double)ps[k], c, M, mean, sd);
        CHECK(fabs((double)c - mean) <= 5.0 * sd, "p %.2f: %ld replays of %ld, expected %.0f +- %.0f",
              (double)ps[k], c, M, mean, 5 * sd);
    }
    task_buffer_free(&b);
    /* min_size 0 still never replays from an empty buffer. */
    task_buffer_options o0 = options(4, 0, 1.0f, 1);
    init_or_die(&b, &o0);
    replays = 0;
    for (int t = 0; t < 1000; t++) replays += task_buffer_should_replay(&b, &r);
    CHECK(replays == 0, "empty buffer replayed %d times", replays);
    task_buffer_free(&b);
}

static void test_prefix(void) {
    enum { DEPTH = 7, DRAWS = 140000 };
    task_buffer b;
    task_buffer_options o = options(4, 0, 0.5f, 1);
    init_or_die(&b, &o);
    buffer_entry deep = make_entry(1, 0.5f, DEPTH), base = make_entry(2, 0.5f, 0),
               one = make_entry(3, 0.5f, 1);
    task_buffer_insert(&b, &deep, 0, NULL, 0);
    task_buffer_insert(&b, &base, 0, NULL, 0);
    task_buffer_insert(&b, &one, 0, NULL, 0);
    rng_state r;
    rng_seed(&r, 3);
    long counts[DEPTH + 2] = {0};
    int out_of_range = 0;
    for (int t = 0; t < DRAWS; t++) {
        int k = task_buffer_prefix(&b, 0, &r);
        if (k < 1 || k > DEPTH) out_of_range++;
        else counts[k]++;
    }
    CHECK(out_of_range == 0, "%d prefixes outside [1, %d]", out_of_range, DEPTH);
    double expected[DEPTH];
    for (int k = 0; k < DEPTH; k++) expected[k] = (double)DRAWS / DEPTH;
    double x = chi2_stat(counts + 1, expected, DEPTH), q = chi2_quantile_999(DEPTH - 1);
    printf("prefix uniform over [1, %d]: chi2 %.2f (0.999 quantile %.2f)\n", DEPTH, x, q);
    CHECK(x < q, "prefix lengths not uniform over [1, %d]: chi2 %.1f >= %.1f", DEPTH, x, q);
    rng_state before = r;
    CHECK(task_buffer_prefix(&b, 1, &r) == 0 && memcmp(&r, &before, sizeof r) == 0,
          "depth-0 entry: the base task, no draw");
    int ones = 0;
    for (int t = 0; t < 100; t++) ones += task_buffer_prefix(&b, 2, &r) == 1;
    CHECK(ones == 100, "depth-1 entry always keeps its one attempt");
    CHECK(task_buffer_prefix(&b, 3, &r) == -1 && task_buffer_prefix(&b, -1, &r) == -1, "bad index");
    task_buffer_free(&b);
}

/* P_score computed here from the formulas: softmax(kappa·S), or rank^(-1/beta) with rank = 1 +
 * #greater; mixed with staleness (t - last)/sum, uniform when the sum is 0. */
/* Multi-turn entries: the turn prefix (paper §4) is the prefix rule read on turns: an entry of depth
 * 5 at turn 3 (three answers that ran, two attempts at turn 3) gives turn' = 0, 1, 2 with
 * probability 1/5 each and turn' = 3 with 2/5; next_turn keeps the answer that ran; the checks and
 * serialisation keep the turn. */
static void test_turn_prefix(void) {
    enum { DEPTH = 5, TURN = 3, DRAWS = 100000 };
    task_buffer b;
    task_buffer_options o = options(4, 0, 0.5f, 1);
    init_or_die(&b, &o);
    buffer_entry e = make_entry(1, 0.5f, DEPTH);
    e.turn = TURN;
    char why[160];
    CHECK(buffer_entry_check(&e, why, sizeof why) == 0, "%s", why);
    CHECK(task_buffer_insert(&b, &e, 0, why, sizeof why) >= 0, "%s", why);
    rng_state r;
    rng_seed(&r, 8);
    long counts[TURN + 1] = {0};
    int bad = 0;
    for (int i = 0; i < DRAWS; i++) {
        buffer_entry out;
        int k = task_buffer_prefix(&b, 0, &r);
        if (task_buffer_copy_prefix(&b, 0, k, &out) || out.depth != k || out.turn > TURN ||
            out.turn != (k - 1 < TURN ? k - 1 : TURN) || buffer_entry_check(&out, why, sizeof why)) {
            bad++;
            continue;
        }
        counts[out.turn]++;
    }
    double expected[TURN + 1];
    for (int t = 0; t < TURN; t++) expected[t] = (double)DRAWS / DEPTH;
    expected[TURN] = (double)DRAWS * (DEPTH - TURN) / DEPTH;
    double x = chi2_stat(counts, expected, TURN + 1), q = chi2_quantile_999(TURN);
    printf("turn prefix: turns 0..3 drawn %ld %ld %ld %ld, chi2 %.2f (0.999 quantile %.2f)\n", counts[0], counts[1],
           counts[2], counts[3], x, q);
    CHECK(bad == 0, "%d prefixes with a wrong turn", bad);
    CHECK(x < q, "turn prefixes not distributed as the prefix rule says: chi2 %.1f >= %.1f", x, q);

    /* next_turn: the latest attempt becomes the answer that ran at the turn */
    buffer_entry n = e;
    CHECK(buffer_entry_next_turn(&n, why, sizeof why) == 0 && n.turn == TURN + 1 && n.depth == TURN + 1 &&
              !memcmp(&n.history[TURN], &e.history[DEPTH - 1], sizeof n.history[0]) &&
              !memcmp(n.history, e.history, sizeof n.history[0] * TURN) && buffer_entry_check(&n, why, sizeof why) == 0,
          "next_turn: %s", why);
    CHECK(buffer_entry_next_turn(&n, why, sizeof why) == BUFFER_ERR_INVALID, "next_turn without an attempt at the turn");
    buffer_entry bad_turn = e;
    bad_turn.turn = DEPTH + 1;
    CHECK(buffer_entry_check(&bad_turn, why, sizeof why) == BUFFER_ERR_INVALID && strstr(why, "turn"), "turn > depth: %s", why);
    bad_turn.turn = -1;
    CHECK(buffer_entry_check(&bad_turn, why, sizeof why) == BUFFER_ERR_INVALID, "negative turn");
    /* serialised and read back with its turn */
    size_t bytes = task_buffer_serialized_size(&b);
    unsigned char *buf = malloc(bytes);
    task_buffer c;
    init_or_die(&c, &o);
    CHECK(buf && task_buffer_serialize(&b, buf, bytes) == bytes &&
              task_buffer_deserialize(&c, buf, bytes, why, sizeof why) == 0 && task_buffer_entry(&c, 0)->turn == TURN,
          "round trip keeps the turn: %s", why);
    free(buf);
    task_buffer_free(&c);
    task_buffer_free(&b);
}

static void reference_probabilities(const float *s, const uint64_t *last, int n, int priority,
                                    double kappa, double beta, double rho, uint64_t t, double *p) {
    double z = 0;
    for (int i = 0; i < n; i++) {
        if (priority == BUFFER_PRIORITY_RANK) {
            int rank = 1;
            for (int j = 0; j < n; j++) rank += s[j] > s[i];
            p[i] = pow((double)rank, -1.0 / beta);
        } else {
            p[i] = exp(kappa * s[i]);
        }
        z += p[i];
    }
    double stale_sum = 0;
    for (int i = 0; i < n; i++) stale_sum += (double)(t - last[i]);
    for (int i = 0; i < n; i++) {
        double stale = stale_sum > 0 ? (double)(t - last[i]) / stale_sum : 1.0 / n;
        p[i] = (1 - rho) * p[i] / z + rho * stale;
    }
}

/* Fills a buffer with n entries of the given scores, inserted at iterations ins[i]. */
static void fill(task_buffer *b, const task_buffer_options *o, const float *s, const uint64_t *ins,
                 int n) {
    init_or_die(b, o);
    char why[200];
    for (int i = 0; i < n; i++) {
        buffer_entry e = make_entry((uint64_t)i, s[i], i % 3);
        if (task_buffer_insert(b, &e, ins[i], why, sizeof why) != i)
            fprintf(stderr, "fill: %s\n", why), exit(1);
    }
}

/* Draws DRAWS indices at a fixed iteration (no staleness) and compares with the reference. */
static void check_static_frequencies(const char *name, const task_buffer_options *o, const float *s,
                                     int n, uint64_t seed) {
    enum { DRAWS = 200000 };
    task_buffer b;
    uint64_t ins[16] = {0};
    fill(&b, o, s, ins, n);
    double p[16], bp[16];
    reference_probabilities(s, ins, n, o->priority, o->kappa, o->rank_beta, 0, 0, p);
    CHECK(task_buffer_probabilities(&b, 0, bp) == 0, "%s: probabilities", name);
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(bp[i] - p[i]));
    CHECK(worst < 1e-12, "%s: probabilities differ from the formula by %.3g", name, worst);
    rng_state r;
    rng_seed(&r, seed);
    long counts[16] = {0};
    int bad = 0;
    for (int t = 0; t < DRAWS; t++) {
        int i = task_buffer_sample(&b, &r, 0);
        if (i < 0 || i >= n) bad++;
        else counts[i]++;
    }
    double expected[16];
    for (int i = 0; i < n; i++) expected[i] = p[i] * DRAWS;
    double x = chi2_stat(counts, expected, n), q = chi2_quantile_999(n - 1);
    printf("%s: chi2 %.2f (0.999 quantile %.2f, %d draws)\n", name, x, q, DRAWS);
    CHECK(bad == 0 && x < q, "%s: chi2 %.1f >= %.1f (0.999, %d dof), %d bad draws", name, x, q,
          n - 1, bad);
    task_buffer_free(&b);
}

static void test_softmax_sampling(void) {
    enum { N = 10 };
    float s[N];
    for (int i = 0; i < N; i++) s[i] = 0.05f + 0.1f * (float)((i * 7) % N); /* distinct, shuffled */
    task_buffer_options o = options(N, 0, 0.5f, 3.0f);
    check_static_frequencies("softmax kappa 3", &o, s, N, 21);
    o.kappa = 0;
    check_static_frequencies("softmax kappa 0 (uniform)", &o, s, N, 22);
    o.kappa = 8;
    check_static_frequencies("softmax kappa 8", &o, s, N, 23);
    /* Large kappa never overflows: all mass on the top score. */
    o.kappa = 1e6f;
    task_buffer b;
    uint64_t ins[N] = {0};
    fill(&b, &o, s, ins, N);
    double p[N];
    task_buffer_probabilities(&b, 0, p);
    int top = 0;
    for (int i = 1; i < N; i++)
        if (s[i] > s[top]) top = i;
    CHECK(p[top] == 1.0 && isfinite(p[(top + 1) % N]), "kappa 1e6: p_top %g", p[top]);
    task_buffer_free(&b);
}

static void test_rank_sampling(void) {
    enum { N = 9 };
    const float s[N] = {0.3f, 0.9f, 0.1f, 0.3f, 0.6f, 0.0f, 0.75f, 0.3f, 0.2f}; /* a three-way tie */
    task_buffer_options o = options(N, 0, 0.5f, 1);
    o.priority = BUFFER_PRIORITY_RANK;
    o.rank_beta = 0.5f;
    check_static_frequencies("rank beta 0.5", &o, s, N, 31);
    o.rank_beta = 1.0f;
    check_static_frequencies("rank beta 1", &o, s, N, 32);
    o.rank_beta = 0.1f; /* PLR's default: nearly all mass on the top two ranks */
    task_buffer b;
    uint64_t ins[N] = {0};
    fill(&b, &o, s, ins, N);
    double p[N];
    task_buffer_probabilities(&b, 0, p);
    CHECK(fabs(p[0] - p[3]) < 1e-15 && fabs(p[0] - p[7]) < 1e-15, "tied scores share a rank");
    CHECK(fabs(p[1] / p[6] / 1024.0 - 1.0) < 1e-5, "rank 1 vs 2 at beta 0.1: ratio %g", p[1] / p[6]);
    task_buffer_free(&b);
}

/* Staleness changes the distribution after every draw, so the expected count of each entry is the
 * sum over draws of its probability at that draw, tracked here from the returned indices. (For
 * such non-identical trials Pearson's statistic is at most as spread as chi-square.) */
static void check_staleness(const char *name, int priority, float rho, uint64_t seed) {
    enum { N = 8, PER_ITER = 4, DRAWS = 200000 };
    const float s[N] = {0.1f, 0.8f, 0.4f, 0.25f, 0.95f, 0.5f, 0.0f, 0.6f};
    uint64_t last[N];
    for (int i = 0; i < N; i++) last[i] = (uint64_t)i; /* inserted at iterations 0..7 */
    task_buffer_options o = options(N, 0, 0.5f, 2.0f);
    o.priority = priority;
    o.rank_beta = 0.5f;
    o.staleness = rho;
    task_buffer b;
    fill(&b, &o, s, last, N);
    rng_state r;
    rng_seed(&r, seed);
    long counts[N] = {0};
    double expected[N] = {0}, worst = 0;
    int bad = 0;
    for (int t = 0; t < DRAWS; t++) {
        uint64_t it = 10 + (uint64_t)(t / PER_ITER);
        double p[N], bp[N];
        reference_probabilities(s, last, N, priority, o.kappa, o.rank_beta, rho, it, p);
        if (t % 997 == 0) {
            task_buffer_probabilities(&b, it, bp);
            for (int i = 0; i < N; i++) worst = fmax(worst, fabs(bp[i] - p[i]));
        }
        int i = task_buffer_sample(&b, &r, it);
        if (i < 0 || i >= N) {
            bad++;
            continue;
        }
        for (int j = 0; j < N; j++) expected[j] += p[j];
        counts[i]++;
        last[i] = it;
        if (task_buffer_entry(&b, i)->last_sampled != it) bad++;
    }
    double x = chi2_stat(counts, expected, N), q = chi2_quantile_999(N - 1);
    printf("%s: chi2 %.2f (0.999 quantile %.2f, %d draws)\n", name, x, q, DRAWS);
    CHECK(bad == 0 && x < q && worst < 1e-12, "%s: chi2 %.1f >= %.1f, %d bad, formula diff %.3g",
          name, x, q, bad, worst);
    task_buffer_free(&b);
}

static void test_staleness_sampling(void) {
    check_staleness("softmax + staleness 0.5", BUFFER_PRIORITY_SOFTMAX, 0.5f, 41);
    check_staleness("rank + staleness 0.3", BUFFER_PRIORITY_RANK, 0.3f, 42);
    check_staleness("staleness only", BUFFER_PRIORITY_SOFTMAX, 1.0f, 43);
    /* With rho = 1 an entry just sampled in this iteration has probability 0 unless all do. */
    task_buffer_options o = options(3, 0, 0.5f, 1);
    o.staleness = 1.0f;
    const float s[3] = {0.2f, 0.5f, 0.9f};
    const uint64_t ins[3] = {0, 0, 0};
    task_buffer b;
    fill(&b, &o, s, ins, 3);
    rng_state r;
    rng_seed(&r, 44);
    double p[3];
    CHECK(task_buffer_probabilities(&b, 0, p) == 0 && fabs(p[0] - 1.0 / 3) < 1e-15,
          "all equally stale: uniform");
    int first = task_buffer_sample(&b, &r, 5);
    task_buffer_probabilities(&b, 5, p);
    CHECK(first >= 0 && p[first] == 0.0 && fabs(p[(first + 1) % 3] - 0.5) < 1e-15,
          "just sampled: probability 0");
    CHECK(task_buffer_sample(&b, &r, 4) == -1 && task_buffer_probabilities(&b, 4, p) == -1,
          "iteration before the clock refused");
    task_buffer_free(&b);
    task_buffer_options e = options(3, 0, 0.5f, 1);
    init_or_die(&b, &e);
    CHECK(task_buffer_sample(&b, &r, 0) == -1, "empty buffer: no sample");
    task_buffer_free(&b);
}

static void test_stats(void) {
    task_buffer b;
    task_buffer_options o = options(8, 0, 0.5f, 1);
    init_or_die(&b, &o);
    task_buffer_stats st;
    task_buffer_get_stats(&b, &st);
    CHECK(st.size == 0 && st.capacity == 8 && st.mean_score == 0 && st.max_depth == 0, "empty");
    const float s[3] = {0.25f, 0.5f, 1.0f};
    const int d[3] = {0, 3, 6};
    for (int i = 0; i < 3; i++) {
        buffer_entry e = make_entry((uint64_t)i, s[i], d[i]);
        task_buffer_insert(&b, &e, 0, NULL, 0);
    }
    task_buffer_get_stats(&b, &st);
    CHECK(st.size == 3 && fabs(st.mean_score - 1.75 / 3) < 1e-12 && st.min_score == 0.25 &&
              st.max_score == 1.0 && st.mean_depth == 3.0 && st.max_depth == 6,
          "size %d mean %g [%g, %g] depth %g max %d", st.size, st.mean_score, st.min_score,
          st.max_score, st.mean_depth, st.max_depth);
    task_buffer_free(&b);
}

/* A buffer with random histories (random bytes, lengths, feedback), partly replaced and sampled. */
static void build_random(task_buffer *b, uint64_t seed) {
    task_buffer_options o = options(8, 2, 0.5f, 2);
    o.staleness = 0.25f;
    init_or_die(b, &o);
    rng_state r;
    rng_seed(&r, seed);
    char why[200];
    for (int i = 0; i < 20; i++) {
        buffer_entry e = make_entry((uint64_t)i, rng_uniform(&r), 0);
        int depth = (int)rng_below(&r, BUFFER_MAX_DEPTH + 1);
        for (int k = 0; k < depth; k++) {
            char ans[BUFFER_ANSWER_CAP], fb[BUFFER_FEEDBACK_CAP];
            size_t al = rng_below(&r, BUFFER_ANSWER_CAP + 1), fl = rng_below(&r, BUFFER_FEEDBACK_CAP + 1);
            for (size_t j = 0; j < al; j++) ans[j] = (char)rng_below(&r, 256);
            for (size_t j = 0; j < fl; j++) fb[j] = (char)rng_below(&r, 256);
            buffer_entry_append(&e, ans, al, rng_uniform(&r), fb, fl, why, sizeof why);
        }
        task_buffer_insert(b, &e, (uint64_t)i, why, sizeof why);
        if (i % 3 == 0) task_buffer_sample(b, &r, (uint64_t)i);
    }
}

static void test_serialize_roundtrip(void) {
    task_buffer a, b;
    build_random(&a, 7);
    CHECK(a.size == 8 && a.next_serial > 8, "built: size %d, %llu accepted", a.size,
          (unsigned long long)a.next_serial);
    size_t n;
    unsigned char *bytes = serialize(&a, &n);
    CHECK(n == 40 + 8 * sizeof(buffer_entry), "size %zu", n);
    CHECK(task_buffer_serialize(&a, bytes, n - 1) == 0, "too small a destination refused");
    task_buffer_options o = a.opt;
    init_or_die(&b, &o);
    char why[200] = "";
    CHECK(task_buffer_deserialize(&b, bytes, n, why, sizeof why) == 0, "%s", why);
    size_t n2;
    unsigned char *again = serialize(&b, &n2);
    CHECK(n2 == n && memcmp(bytes, again, n) == 0, "round trip bit-exact");
    CHECK(b.size == a.size && b.next_serial == a.next_serial && b.clock == a.clock &&
              memcmp(a.entries, b.entries, (size_t)a.size * sizeof(buffer_entry)) == 0,
          "entries and counters restored");
    /* A resumed buffer continues exactly as the original would. */
    rng_state ra, rb;
    rng_seed(&ra, 99);
    rb = ra;
    int diverged = 0;
    for (int t = 0; t < 300; t++) {
        uint64_t it = 100 + (uint64_t)t;
        int ia = task_buffer_sample(&a, &ra, it), ib = task_buffer_sample(&b, &rb, it);
        int ka = task_buffer_prefix(&a, ia, &ra), kb = task_buffer_prefix(&b, ib, &rb);
        buffer_entry ea, eb;
        task_buffer_copy_prefix(&a, ia, ka, &ea);
        task_buffer_copy_prefix(&b, ib, kb, &eb);
        float s = rng_uniform(&ra);
        rng_uniform(&rb);
        ea.score = eb.score = s;
        int ja = task_buffer_insert(&a, &ea, it, NULL, 0), jb = task_buffer_insert(&b, &eb, it, NULL, 0);
        diverged += ia != ib || ka != kb || ja != jb;
    }
    free(again);
    again = serialize(&b, &n2);
    free(bytes);
    bytes = serialize(&a, &n);
    CHECK(diverged == 0 && n == n2 && memcmp(bytes, again, n) == 0,
          "resumed run diverged at %d steps", diverged);
    /* An empty buffer round-trips too. */
    task_buffer e;
    init_or_die(&e, &o);
    size_t ne;
    unsigned char *empty = serialize(&e, &ne);
    CHECK(ne == 40 && task_buffer_deserialize(&b, empty, ne, why, sizeof why) == 0 && b.size == 0,
          "empty round trip: %s", why);
    free(empty);
    free(bytes);
    free(again);
    task_buffer_free(&e);
    task_buffer_free(&a);
    task_buffer_free(&b);
}

static void put_u32(unsigned char *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void put_u64(unsigned char *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }
static void put_f32(unsigned char *p, size_t off, float v) { memcpy(p + off, &v, 4); }
static void put_i32(unsigned char *p, size_t off, int32_t v) { memcpy(p + off, &v, 4); }

static void test_deserialize_corrupt(void) {
    task_buffer a, b;
    build_random(&a, 8);
    size_t n;
    unsigned char *good = serialize(&a, &n);
    init_or_die(&b, &a.opt);
    /* b holds a different, valid state that every failure must leave untouched. */
    buffer_entry keep = make_entry(5, 0.5f, 2);
    task_buffer_insert(&b, &keep, 0, NULL, 0);
    size_t nb;
    unsigned char *b_before = serialize(&b, &nb);
    unsigned char *bad = malloc(n + 8);
    const size_t E = 40, ES = sizeof(buffer_entry);
    const size_t e2 = E + 2 * ES; /* entry 2 */
    int depth2;
    memcpy(&depth2, good + e2 + offsetof(buffer_entry, depth), 4);
    CHECK(depth2 >= 0 && depth2 < BUFFER_MAX_DEPTH, "entry 2 has a free attempt slot");
    const size_t attempt0 = e2 + offsetof(buffer_entry, history);
    enum { CASES = 18 };
    struct {
        const char *what, *msg;
    } cases[CASES] = {
        {"truncated header", "truncated"},   {"truncated entry", "truncated"},
        {"trailing bytes", "trailing"},      {"bad magic", "magic"},
        {"bad version", "version"},          {"bad entry size", "entries of"},
        {"bad capacity", "capacity"},        {"size > capacity", "exceeds capacity"},
        {"score > 1", "score"},              {"negative score", "score"},
        {"depth 17", "BUFFER_MAX_DEPTH"},      {"negative depth", "negative"},
        {"answer length", "answer length"},  {"bad reward", "reward"},
        {"bad instance domain", "domain"},   {"wrong split mark", "marked"},
        {"serial >= next", "serial"},        {"held-out task", "held-out"},
    };
    for (int c = 0; c < CASES; c++) {
        memcpy(bad, good, n);
        size_t len = n;
        switch (c) {
        case 0: len = 39; break;
        case 1: len = n - 1; break;
        case 2: len = n + 8; memset(bad + n, 0, 8); break;
        case 3: bad[0] = 'X'; break;
        case 4: put_u32(bad, 8, 2); break;
        case 5: put_u32(bad, 12, (uint32_t)ES + 8); break;
        case 6: put_u32(bad, 16, 16); break;
        case 7: put_u32(bad, 20, 9); break;
        case 8: put_f32(bad, e2 + offsetof(buffer_entry, score), 1.5f); break;
        case 9: put_f32(bad, e2 + offsetof(buffer_entry, score), -0.25f); break;
        case 10: put_i32(bad, e2 + offsetof(buffer_entry, depth), BUFFER_MAX_DEPTH + 1); break;
        case 11: put_i32(bad, e2 + offsetof(buffer_entry, depth), -1); break;
        case 12: /* needs an attempt: give entry 2 depth >= 1 by claiming slot 0 */
            put_i32(bad, e2 + offsetof(buffer_entry, depth), depth2 ? depth2 : 1);
            {
                uint16_t l = BUFFER_ANSWER_CAP + 1;
                memcpy(bad + attempt0 + offsetof(buffer_attempt, answer_len), &l, 2);
            }
            break;
        case 13:
            put_i32(bad, e2 + offsetof(buffer_entry, depth), depth2 ? depth2 : 1);
            put_f32(bad, attempt0 + offsetof(buffer_attempt, reward), 2.0f);
            break;
        case 14: put_u32(bad, e2 + offsetof(buffer_entry, task) + offsetof(task_instance, domain), 99); break;
        case 15: {
            size_t off = e2 + offsetof(buffer_entry, task) + offsetof(task_instance, split);
            uint32_t split;
            memcpy(&split, bad + off, 4);
            put_u32(bad, off, split ^ 1u);
            break;
        }
        case 16: put_u64(bad, e2 + offsetof(buffer_entry, serial), 1000); break;
        case 17: {
            const task_domain *d = task_domain_find("arith");
            int32_t knobs[TASK_MAX_KNOBS];
            task_knobs_default(d, knobs);
            task_instance h;
            task_draw(d, knobs, TASK_SPLIT_HELDOUT, 5, 0, &h, NULL, 0);
            memcpy(bad + e2 + offsetof(buffer_entry, task), &h, sizeof h);
            break;
        }
        }
        char why[300] = "";
        int rc = task_buffer_deserialize(&b, bad, len, why, sizeof why);
        size_t nb2;
        unsigned char *b_after = serialize(&b, &nb2);
        CHECK(rc == -1 && strstr(why, cases[c].msg) && nb2 == nb && memcmp(b_before, b_after, nb) == 0,
              "%s: rc %d, message '%s'", cases[c].what, rc, why);
        if (c >= 8) CHECK(strstr(why, "entry 2") != NULL, "%s: message names the entry: '%s'",
                          cases[c].what, why);
        free(b_after);
    }
    /* Garbage in an unused attempt slot and a last_sampled after the clock. */
    memcpy(bad, good, n);
    bad[e2 + offsetof(buffer_entry, history) + (size_t)(BUFFER_MAX_DEPTH - 1) * sizeof(buffer_attempt) + 9] = 1;
    char why[300] = "";
    CHECK(task_buffer_deserialize(&b, bad, n, why, sizeof why) == -1 && strstr(why, "unused"),
          "unused slot: '%s'", why);
    memcpy(bad, good, n);
    put_u64(bad, e2 + offsetof(buffer_entry, last_sampled), a.clock + 1);
    CHECK(task_buffer_deserialize(&b, bad, n, why, sizeof why) == -1 && strstr(why, "clock"),
          "last_sampled after the clock: '%s'", why);
    /* Every truncation fails cleanly. */
    int accepted = 0;
    for (size_t len = 0; len < n; len += 97) accepted += task_buffer_deserialize(&b, good, len, NULL, 0) == 0;
    CHECK(accepted == 0, "%d truncations accepted", accepted);
    CHECK(task_buffer_deserialize(&b, good, n, why, sizeof why) == 0, "the original loads: %s", why);
    free(bad);
    free(good);
    free(b_before);
    task_buffer_free(&a);
    task_buffer_free(&b);
}

/* Random byte flips: never a crash; whatever is accepted is a valid buffer that re-serialises to
 * the same bytes. Flips are aimed at the header and entry fields half the time. */
static void test_deserialize_fuzz(void) {
    task_buffer a, b;
    build_random(&a, 9);
    size_t n;
    unsigned char *good = serialize(&a, &n);
    init_or_die(&b, &a.opt);
    unsigned char *bad = malloc(n);
    rng_state r;
    rng_seed(&r, 123);
    int accepted = 0, inconsistent = 0;
    for (int t = 0; t < 3000; t++) {
        memcpy(bad, good, n);
        int flips = 1 + (int)rng_below(&r, 4);
        for (int f = 0; f < flips; f++) {
            size_t pos = rng_below(&r, 2) ? rng_below(&r, n)
                                          : (rng_below(&r, 2) ? rng_below(&r, 40)
                                                              : 40 + rng_below(&r, a.size) * sizeof(buffer_entry) +
                                                                    rng_below(&r, 56));
            bad[pos] ^= (unsigned char)(1 + rng_below(&r, 255));
        }
        if (task_buffer_deserialize(&b, bad, n, NULL, 0) == 0) {
            accepted++;
            size_t n2;
            unsigned char *re = serialize(&b, &n2);
            char why[300];
            int ok = n2 == n && memcmp(re, bad, n) == 0;
            for (int i = 0; i < b.size; i++) ok &= buffer_entry_check(&b.entries[i], why, sizeof why) == 0;
            inconsistent += !ok;
            free(re);
        }
    }
    CHECK(inconsistent == 0, "%d accepted inputs were not valid buffers", inconsistent);
    CHECK(accepted > 0 && accepted < 3000, "accepted %d of 3000 (flips in answer bytes are valid)",
          accepted);
    free(bad);
    free(good);
    task_buffer_free(&a);
    task_buffer_free(&b);
}

int main(void) {
    test_options();
    test_entry_append();
    test_insert_rule();
    test_insert_top_n_random();
    test_insert_invalid();
    test_inherited_scores();
    test_replay();
    test_prefix();
    test_turn_prefix();
    test_softmax_sampling();
    test_rank_sampling();
    test_staleness_sampling();
    test_stats();
    test_serialize_roundtrip();
    test_deserialize_corrupt();
    test_deserialize_fuzz();
    return test_finish("test_task_buffer");
}
