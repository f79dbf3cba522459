/* Helpers shared by the benchmark programs (bench_common.c). */
#ifndef EXITRL_BENCH_COMMON_H
#define EXITRL_BENCH_COMMON_H
#include <stddef.h>
#include <stdio.h>

#include "model/model.h"

/* The running program's name, for messages; each main sets it first. */
extern const char *bench_program;

/* Re-executes the program with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = threads unless set. */
void bench_pin_threads(int threads, char **argv);
double bench_now(void);
/* Median of n > 0 values (sorts x). */
double bench_median(double *x, int n);
/* The 1-minute load average, or -1. */
double bench_load_average(void);
/* "cpu: <model name>", or the GPU's name when be is the CUDA backend. */
void bench_device_name(const exitrl_backend *be, char *buf, size_t n);
/* s as a JSON string. */
void bench_json_string(FILE *f, const char *s);
/* An interpreter that imports torch (requested, else $EXITRL_PYTHON, else python3 then
 * /usr/bin/python3), or NULL with the reason printed. */
const char *bench_find_python(const char *requested);
/* The model's fp32 weights in host/model/model.h's flat layout, for a PyTorch peer. Returns 0 or -1. */
int bench_write_weights(const gpt_model *m, const char *path);
/* An integer option value in [min, 1000000], or exit 2 with a message naming the option. */
int bench_parse_int(const char *opt, const char *s, int min);
/* $EXITRL_GIT_REVISION when set, else the source tree's short git revision, or "unknown". */
void bench_git_revision(char *buf, size_t n);
/* The current time as UTC ISO 8601 ("2026-11-21T19:46:10Z"). */
void bench_utc_date(char *buf, size_t n);
/* Value of "key": NUMBER in a JSON line as Python's json.dumps writes it, or -1 when absent. */
double bench_json_number(const char *line, const char *key);
/* Peak DRAM bandwidth of GPU 0 in bytes/s (double data rate x bus width), or -1 when be is not
 * the CUDA backend or the driver does not say. */
double bench_peak_bandwidth(const exitrl_backend *be);
/* The dense bf16 tensor-core peak in FLOP/s of a GPU, by the name the driver reports, from a
 * small datasheet table (bench_common.c); -1 for a device not in it (then no MFU is recorded). */
double bench_bf16_peak_flops(const char *device);
/* Model FLOPs of one trained token (forward + backward) at sequence length T:
 * 6 * N_params + 12 * n_layer * d_model * T (the matmuls' 6N plus the attention scores and
 * weighted sums, counted without the causal halving, as in the PaLM paper's MFU). */
double bench_train_flops_per_token(const gpt_config *c, int T);
#endif
