/* Helpers shared by the benchmark programs (bench_common.c). */
#ifndef EXITRL_BENCH_COMMON_H
#define EXITRL_BENCH_COMMON_H
#include <stddef.h>
#include <stdio.h>

#include "model.h"

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
/* The model's fp32 weights in host/model.h's flat layout, for a PyTorch peer. Returns 0 or -1. */
int bench_write_weights(const gpt_model *m, const char *path);
/* An integer option value in [min, 1000000], or exit 2 with a message naming the option. */
int bench_parse_int(const char *opt, const char *s, int min);
/* The source tree's short git revision, or "unknown". */
void bench_git_revision(char *buf, size_t n);
/* The current time as UTC ISO 8601 ("2026-11-21T19:46:10Z"). */
void bench_utc_date(char *buf, size_t n);
#endif
