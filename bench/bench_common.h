/* Helpers shared by the benchmark programs (bench_common.c). */
#ifndef EXITRL_BENCH_COMMON_H
#define EXITRL_BENCH_COMMON_H
#include <stddef.h>
#include <stdio.h>

#include "model/model.h"

/* The running program's name, for messages; each main sets it first. */
extern const char *bench_program;

/* The tree the peers (bench/peers/) and bench/results/ are found in: $EXITRL_SOURCE_DIR when set;
 * else the source tree the program was built from (EXITRL_SOURCE_DIR at compile time) while it has
 * bench/peers/; else the folder above the executable's, when that has bench/peers/ (a relocated
 * copy: tools/gpu_prebuild.sh's prebuilt/bench/bench_train finds prebuilt/bench/peers/); else the
 * compiled-in tree. */
const char *bench_source_dir(void);
/* bench_source_dir()/bench/peers/<name>, in a static buffer (valid until the next call). */
const char *bench_peer_script(const char *name);

/* Re-executes the program with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS = threads unless set. */
void bench_pin_threads(int threads, char **argv);
double bench_now(void);
/* Median of n > 0 values (sorts x). */
double bench_median(double *x, int n);
/* The 1-minute load average, or -1. */
double bench_load_average(void);
/* "cpu: <model name>", or the GPU's name when be is the CUDA backend. */
void bench_device_name(const exitrl_backend *be, char *buf, size_t n);
/* The facts every JSONL record gives about the run. */
typedef struct {
    char device[300], git[64], date[32], blas[512];
    char peer_blas[256]; /* the PyTorch peers' BLAS (bench_peer_blas); "" when no peer runs */
} bench_run;
/* run's device (bench_device_name), git revision (bench_git_revision), date (bench_utc_date) and
 * the CPU backend's BLAS (exitrl_cpu_blas_info). */
void bench_run_facts(const exitrl_backend *be, bench_run *run);
/* Starts a JSONL object: {"bench":..,"device":..,"backend":..,"dtype":..,"git":..,"date":..,"blas":..,["peer_blas":..,]"config":..
 * (no dtype when it is NULL); the caller writes ,"key":value pairs and the closing "}\n". */
void bench_json_head(FILE *f, const char *bench, const bench_run *run, const char *backend, const char *dtype,
                     const char *config);
/* The JSONL file to append to: `out` when given; else, for a quick run, /dev/null (nothing is
 * kept; path is set to ""); else bench/results/<stem>_gpu.jsonl or _cpu.jsonl under
 * bench_source_dir(). path receives the file's name; NULL with the reason printed when it cannot
 * be opened. */
FILE *bench_open_results(const char *out, int quick, const char *stem, int gpu, char *path, size_t n);
/* The start of a benchmark on a backend: pins the threads (bench_pin_threads), opens the backend
 * `device` names (auto, cpu or cuda) and fills run (bench_run_facts). NULL when the backend
 * cannot open (the reason printed). */
exitrl_backend *bench_open(const char *device, int threads, char **argv, bench_run *run);
/* Starts a peer: flushes stdout (so the peer's output comes after ours) and opens `cmd` for
 * reading its output; NULL with "cannot start the <what>" printed on failure. */
FILE *bench_peer_open(const char *cmd, const char *what);
/* Creates a private directory /tmp/exitrl_<stem>_XXXXXX for the files handed to a peer, its name
 * in dir; returns 0, or -1 with the reason printed. */
int bench_temp_dir(char *dir, size_t n, const char *stem);
/* A warning on stderr when the 1-minute load average is above 3: figures will be `direction`
 * ("low" for throughputs, "high" for times) and noisy. */
void bench_warn_load(double load, const char *direction);
/* s as a JSON string. */
void bench_json_string(FILE *f, const char *s);
/* An interpreter that imports torch (requested, else $EXITRL_PYTHON, else python3 then
 * /usr/bin/python3), or NULL with the reason printed. */
const char *bench_find_python(const char *requested);
/* What the PyTorch of `python` says about its BLAS (torch version, BLAS_INFO, MKL, threads), into
 * run->peer_blas (left "" when it cannot tell); bench_json_head then writes it as "peer_blas". */
void bench_peer_blas(const char *python, bench_run *run);
/* bytes of data into the file path (created or truncated). Returns 0, or -1 with the reason printed. */
int bench_write_file(const char *path, const void *data, size_t bytes);
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
/* Value of "key": "TEXT" in such a line (up to the next quote) into buf; 1 when found, else 0
 * with buf empty. */
int bench_json_text(const char *line, const char *key, char *buf, size_t n);
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
