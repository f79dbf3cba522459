/* Host-side random numbers: xoshiro256** seeded by splitmix64. Small, fast, and its whole state
 * is four words, so it is saved in checkpoints and a resumed run draws the same numbers. */
#ifndef EXITRL_RNG_H
#define EXITRL_RNG_H
#include <stdint.h>

typedef struct { uint64_t s[4]; } rng_state;

uint64_t splitmix64(uint64_t *x);
void rng_seed(rng_state *r, uint64_t seed);
/* 1 for a usable state; 0 for the all-zero state, which xoshiro256** never leaves (and never
 * reaches from a seeded one), so a state read from outside that is all zero is corrupt. */
int rng_state_valid(const rng_state *r);
uint64_t rng_u64(rng_state *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float rng_uniform(rng_state *r);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t rng_below(rng_state *r, uint64_t n);
/* Standard normal (Box-Muller). */
float rng_normal(rng_state *r);
#endif
