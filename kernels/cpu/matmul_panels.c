/* Matrix products on weights laid out once in panels (ops.h, "weights in panels for decode steps").
 *
 * A decode step multiplies a few rows (one per sequence) by every weight matrix of the model.
 * Through CBLAS, each call re-lays out the whole weight matrix into the library's panels before it
 * multiplies (OpenBLAS's packing was 13% of a small-model rollout), although the weights do not
 * change during a rollout. Here the weights are laid out once per rollout and each step only
 * multiplies:
 *
 *   layout: w[OC, C] -> panels of NR output channels, wp[p, c, j] = w[p*NR + j, c]
 *           (zero for p*NR + j >= OC), so a panel is C rows of NR contiguous floats;
 *   kernel: a tile of MR input rows x NR channels keeps MR x NR sums in vector registers and
 *           walks c once: per c, one panel row (NR floats) and MR broadcast inputs.
 *
 * The vector width follows the compile target (-march=native: 16 floats with AVX-512, 8 with
 * AVX2, else 4), through GCC's vector extension; MR is chosen so that the sums, the panel row and
 * one broadcast fit the register file. Sums run over c in order in fp32, each step one fused
 * multiply-add where the target has FMA (CMake compiles this file with -ffp-contract=fast), so
 * results differ from CBLAS's by rounding only. */
#include <string.h>

#include "cpu_ops.h"

#if defined(__AVX512F__)
#define VL 16 /* floats per vector */
#define MR 8  /* rows per tile: 16 sums + 2 + 1 of 32 zmm registers */
#elif defined(__AVX2__)
#define VL 8
#define MR 6  /* 12 sums + 2 + 1 of 16 ymm registers */
#else
#define VL 4
#define MR 4
#endif
#define NR (2 * VL) /* output channels per panel */
#define PANEL_PREFETCH 16 /* rows; a hint only (past the panel's end it is harmless) */
typedef float vfloat __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));

static int panels(int OC) { return (OC + NR - 1) / NR; }

size_t cpu_panel_weight_bytes(exitrl_backend *be, int C, int OC) {
    (void)be;
    return (size_t)panels(OC) * NR * C * sizeof(float);
}

void cpu_panel_weight(exitrl_backend *be, void *dst, const void *w_, int C, int OC) {
    (void)be;
    const float *w = w_;
    float *wp = dst;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < panels(OC); p++) {
        float *panel = wp + (size_t)p * C * NR;
        for (int j = 0; j < NR; j++) {
            int o = p * NR + j;
            if (o < OC)
                for (int c = 0; c < C; c++) panel[(size_t)c * NR + j] = w[(size_t)o * C + c];
            else
                for (int c = 0; c < C; c++) panel[(size_t)c * NR + j] = 0.0f;
        }
    }
}

/* out[0..mr, 0..nc) (row stride ldo) = bias[0..nc) + inp[0..mr, :C] (row stride C) @ one panel
 * (bias holds NR values); mr <= MR is a constant in every inlined copy, so the sums stay in
 * registers. */
static inline __attribute__((always_inline)) void tile(float *out, int ldo, const float *inp, const float *panel,
                                                       const float *bias, int C, int nc, const int mr) {
    vfloat lo[MR], hi[MR], bias_lo, bias_hi;
    memcpy(&bias_lo, bias, sizeof bias_lo);
    memcpy(&bias_hi, bias + VL, sizeof bias_hi);
    for (int i = 0; i < mr; i++) lo[i] = bias_lo, hi[i] = bias_hi;
    for (int c = 0; c < C; c++) {
        /* The panel streams from memory for the first tile (the hardware prefetchers stop at each
         * 4 KB page); asking for its rows PANEL_PREFETCH ahead gave 5% (small model, 2 threads). */
        __builtin_prefetch(panel + (size_t)(c + PANEL_PREFETCH) * NR);
        __builtin_prefetch(panel + (size_t)(c + PANEL_PREFETCH) * NR + NR / 2);
        vfloat b0, b1;
        memcpy(&b0, panel + (size_t)c * NR, sizeof b0);
        memcpy(&b1, panel + (size_t)c * NR + VL, sizeof b1);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const float a = inp[(size_t)i * C + c]; /* broadcast by the vector-scalar products */
            lo[i] += b0 * a;
            hi[i] += b1 * a;
        }
    }
    for (int i = 0; i < mr; i++) {
        float row[NR];
        memcpy(row, &lo[i], sizeof lo[i]);
        memcpy(row + VL, &hi[i], sizeof hi[i]);
        memcpy(out + (size_t)i * ldo, row, (size_t)nc * sizeof(float));
    }
}

/* One tile with a row count known only at run time: dispatch to a copy specialised for it. */
static void tile_rows(float *out, int ldo, const float *inp, const float *panel, const float *bias, int C, int nc,
                      int mr) {
    switch (mr) {
#define ROWS(k) case k: tile(out, ldo, inp, panel, bias, C, nc, k); break;
        ROWS(1) ROWS(2) ROWS(3) ROWS(4)
#if MR > 4
        ROWS(5) ROWS(6)
#endif
#if MR > 6
        ROWS(7) ROWS(8)
#endif
#undef ROWS
    }
}

void cpu_matmul_forward_panels(exitrl_backend *be, void *out_, void *pre_gelu, const void *inp_,
                               const void *wpanels, const void *bias_, int N, int C, int OC) {
    float *acc = pre_gelu ? pre_gelu : out_;
    const float *inp = inp_, *wp = wpanels, *b = bias_;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < panels(OC); p++) {
        const float *panel = wp + (size_t)p * C * NR;
        int nc = OC - p * NR < NR ? OC - p * NR : NR;
        float pb[NR] = {0}; /* the panel's bias, zero past OC */
        if (b) memcpy(pb, b + (size_t)p * NR, (size_t)nc * sizeof(float));
        for (int n = 0; n < N; n += MR) {
            float *o = acc + (size_t)n * OC + (size_t)p * NR;
            const float *x = inp + (size_t)n * C;
            if (N - n >= MR)
                tile(o, OC, x, panel, pb, C, nc, MR);
            else
                tile_rows(o, OC, x, panel, pb, C, nc, N - n);
        }
    }
    cpu_matmul_epilogue(be, out_, pre_gelu, NULL, N, OC); /* the bias is in: only GELU is left */
}
