#include "rl/ngram_embed.h"

#include <stdint.h>

#include "model/rng.h"

void ngram_embed(const int *tokens, int n, float *emb, int D) {
    for (int d = 0; d < D; d++) emb[d] = 0.0f;
    int count = 0;
    for (int len = 1; len <= 3; len++)
        for (int i = 0; i + len <= n; i++) {
            uint64_t h = 0x6E6772616DULL ^ (uint64_t)len; /* "ngram" */
            for (int j = 0; j < len; j++) {
                uint64_t x = h ^ (uint64_t)(uint32_t)tokens[i + j];
                h = splitmix64(&x);
            }
            for (int d = 0; d < D; d++) { /* the sign of dimension d: one hash bit */
                uint64_t y = h ^ ((uint64_t)d * 0x9E3779B97F4A7C15ULL);
                emb[d] += (splitmix64(&y) >> 63) ? 1.0f : -1.0f;
            }
            count++;
        }
    if (count)
        for (int d = 0; d < D; d++) emb[d] /= (float)count;
}
