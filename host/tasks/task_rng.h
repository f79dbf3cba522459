/* The task domains' own small RNG (splitmix64), kept apart from the model's RNG so that problem
 * generation, teacher answers and demonstrations depend only on their seeds. Header-only. */
#ifndef EXITRL_TASK_RNG_H
#define EXITRL_TASK_RNG_H
#include <stdint.h>

typedef struct {
    uint64_t state;
} task_rng;

/* splitmix64's output function: a bijective 64-bit mixer (Steele, Lea, Flood 2014). */
static inline uint64_t task_mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static inline task_rng task_rng_seeded(uint64_t seed) {
    task_rng r = {seed};
    return r;
}

static inline uint64_t task_rng_next(task_rng *r) {
    r->state += 0x9E3779B97F4A7C15ULL;
    return task_mix64(r->state);
}

/* Uniform integer in [0, n), n >= 1, without modulo bias (Lemire's multiply-and-reject). */
static inline uint32_t task_rng_below(task_rng *r, uint32_t n) {
    uint64_t m = (uint64_t)(uint32_t)(task_rng_next(r) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(task_rng_next(r) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* Uniform integer in [lo, hi], lo <= hi, hi - lo < 2^32 - 1. */
static inline int64_t task_rng_range(task_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)task_rng_below(r, (uint32_t)(hi - lo + 1));
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double task_rng_unit(task_rng *r) {
    return (double)(task_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
#endif
