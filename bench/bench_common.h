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

/* ---- command-line options: each program lists its options in a table, ended by {0} ---- */
typedef enum {
    BENCH_FLAG,   /* no value: *(int *)ptr = n */
    BENCH_STRING, /* *(const char **)ptr = the value */
    BENCH_INT,    /* *(int *)ptr = the value, an integer >= n (bench_parse_int) */
    BENCH_CALL,   /* call(the value, ptr) */
} bench_option_kind;

typedef struct {
    const char *name; /* "--steps" */
    const char *arg;  /* the value's placeholder in --help ("N"); NULL for a flag */
    bench_option_kind kind;
    void *ptr;
    int n; /* BENCH_FLAG: the value stored; BENCH_INT: the least value accepted */
    void (*call)(const char *value, void *ptr);
    const char *help; /* lines after the first are separated by '\n' */
} bench_option;

/* The options that mean the same in every program (the defaults of --out and the peers that
 * --python serves are said by each program). */
#define BENCH_OPT_DEVICE(p) {"--device", "D", BENCH_STRING, (p), 0, NULL, "auto (default: CUDA when a GPU answers), cpu or cuda"}
#define BENCH_OPT_THREADS(p) \
    {"--threads", "N", BENCH_INT, (p), 1, NULL, "CPU threads for both sides (default 2; sets OMP_NUM_THREADS)"}
#define BENCH_OPT_OUT(p, default_text) {"--out", "PATH", BENCH_STRING, (p), 0, NULL, "JSONL file to append to " default_text}
#define BENCH_OPT_PYTHON(p, peers)                                                                        \
    {"--python", "PATH", BENCH_STRING, (p), 0, NULL,                                                      \
     "interpreter with torch for " peers " (default $EXITRL_PYTHON, else\nthe first of python3, "          \
     "/usr/bin/python3 that imports torch)"}
#define BENCH_OPT_NO_PEER(p, help) {"--no-peer", NULL, BENCH_FLAG, (p), 0, NULL, help}
#define BENCH_OPT_QUICK(p, help) {"--quick", NULL, BENCH_FLAG, (p), 1, NULL, help}
#define BENCH_OPT_INT(name, arg, p, min, help) {name, arg, BENCH_INT, (p), (min), NULL, help}
#define BENCH_OPT_STRING(name, arg, p, help) {name, arg, BENCH_STRING, (p), 0, NULL, help}

/* "usage: PROGRAM [options]", the text `about` (ending in a newline), then the options and --help. */
void bench_usage(FILE *f, const bench_option *opts, const char *about);
/* Sets what argv names; --help prints the usage on stdout and exits 0; an unknown option or a
 * missing value prints a message naming it and the usage on stderr and exits 2. */
void bench_parse_options(int argc, char **argv, const bench_option *opts, const char *about);
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
