/* CPU reference of sample_step: the filtering and draw rules of struct exitrl_sampling (ops.h). */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"
#include "philox.h"

typedef struct {
    float p;
    int id;
} ranked;

/* Higher probability first, ties broken by the lower id. */
static int by_rank(const void *a_, const void *b_) {
    const ranked *a = a_, *b = b_;
    if (a->p != b->p) return a->p > b->p ? -1 : 1;
    return a->id - b->id;
}

static int sample_row(const float *logits, const struct exitrl_sampling *sp, int V, float *prob,
                      ranked *order, float u, float *logprob) {
    if (sp->greedy) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        float mx = logits[best], sum = 0.0f;
        for (int v = 0; v < V; v++) sum += expf(logits[v] - mx);
        *logprob = -logf(sum); /* logits[best] - logsumexp */
        return best;
    }
    float inv_t = 1.0f / sp->temperature, mx = -INFINITY, sum = 0.0f;
    for (int v = 0; v < V; v++) mx = fmaxf(mx, logits[v] * inv_t);
    for (int v = 0; v < V; v++) sum += (prob[v] = expf(logits[v] * inv_t - mx));
    float lse = mx + logf(sum);
    for (int v = 0; v < V; v++) prob[v] /= sum;
    /* Keep v when fewer than top_k tokens rank before it and the mass ranked before it < top_p. */
    float *kept = prob + V, kept_mass = 0.0f;
    if (sp->top_k <= 0 && sp->top_p >= 1.0f) {
        for (int v = 0; v < V; v++) kept_mass += (kept[v] = prob[v]);
    } else {
        for (int v = 0; v < V; v++) {
            order[v].p = prob[v];
            order[v].id = v;
            kept[v] = 0.0f;
        }
        qsort(order, (size_t)V, sizeof *order, by_rank);
        float before = 0.0f;
        for (int r = 0; r < V; r++) {
            if ((sp->top_k > 0 && r >= sp->top_k) || before >= sp->top_p) break;
            kept[order[r].id] = order[r].p;
            kept_mass += order[r].p;
            before += order[r].p;
        }
    }
    float target = u * kept_mass, run = 0.0f;
    int chosen = -1, last_kept = 0;
    for (int v = 0; v < V; v++) {
        if (kept[v] <= 0.0f) continue;
        last_kept = v;
        run += kept[v];
        if (run > target) {
            chosen = v;
            break;
        }
    }
    if (chosen < 0) chosen = last_kept; /* rounding left the walk short: the last kept token */
    *logprob = logits[chosen] * inv_t - lse;
    return chosen;
}

void cpu_sample_step(exitrl_backend *be, const void *logits_, const struct exitrl_sampling *sp,
                     int *tok_buf, float *logprob_buf, int *pos, int *done, const int *limit, int B,
                     int S, int V, int Vp, int seq_offset) {
    const float *logits = logits_;
#pragma omp parallel
    {
        float *prob = malloc(2 * (size_t)V * sizeof(float));
        ranked *order = malloc((size_t)V * sizeof(ranked));
#pragma omp for
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            int p = pos[b] + 1;
            float u = sp->greedy ? 0.0f : philox_uniform(sp->seed, (uint32_t)(seq_offset + b), (uint32_t)p);
            float lp;
            int tok = sample_row(logits + (size_t)b * Vp, sp, V, prob, order, u, &lp);
            tok_buf[(size_t)b * S + p] = tok;
            logprob_buf[(size_t)b * S + p] = lp;
            pos[b] = p;
            if (tok == sp->eos || p + 1 >= limit[b]) done[b] = 1;
        }
        free(prob);
        free(order);
    }
}
