/* Helpers shared by the benchmark programs: thread pinning, timing, machine facts, JSON, and the
 * files handed to the PyTorch peers. */
#define _POSIX_C_SOURCE 200809L
#include "bench_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run/setup.h"
#ifdef EXITRL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

const char *bench_program = "bench";

static int has_peers(const char *dir) {
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/bench/peers", dir);
    return len > 0 && (size_t)len < sizeof path && access(path, R_OK | X_OK) == 0;
}

const char *bench_source_dir(void) {
    static char dir[4096];
    if (dir[0]) return dir;
    const char *env = getenv("EXITRL_SOURCE_DIR");
    if (env && *env && strlen(env) < sizeof dir) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    if (!has_peers(EXITRL_SOURCE_DIR)) {
        char exe[4096];
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (len > 0) {
            exe[len] = 0;
            for (int up = 0; up < 2; up++) { /* the executable's folder, then the one above it */
                char *slash = strrchr(exe, '/');
                if (!slash) break;
                *slash = 0;
            }
            if (exe[0] && has_peers(exe)) {
                snprintf(dir, sizeof dir, "%s", exe);
                return dir;
            }
        }
    }
    snprintf(dir, sizeof dir, "%s", EXITRL_SOURCE_DIR);
    return dir;
}

const char *bench_peer_script(const char *name) {
    static char path[4096 + 256];
    snprintf(path, sizeof path, "%s/bench/peers/%s", bench_source_dir(), name);
    return path;
}

/* OpenMP and OpenBLAS read their thread counts when they load, before main: if the environment
 * does not already say `threads`, set it and re-execute this program so both see it. */
void bench_pin_threads(int threads, char **argv) {
    char want[16];
    snprintf(want, sizeof want, "%d", threads);
    const char *omp = getenv("OMP_NUM_THREADS"), *blas = getenv("OPENBLAS_NUM_THREADS");
    if (omp && !strcmp(omp, want) && blas && !strcmp(blas, want)) return;
    setenv("OMP_NUM_THREADS", want, 1);
    setenv("OPENBLAS_NUM_THREADS", want, 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "%s: warning: could not re-execute to pin %d threads (%s)\n", bench_program, threads,
            strerror(errno));
}

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n > 0 values (sorts them): robust to iterations slowed by other work on the machine. */
double bench_median(double *x, int n) {
    qsort(x, n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Reads the first line of a command's output into buf (newline stripped); "" on failure. */
static void command_line(const char *cmd, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(buf, (int)n, p)) buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (pclose(p) != 0) buf[0] = '\0';
}

/* The 1-minute load average (-1 if unknown), recorded so a result from a busy machine shows it. */
double bench_load_average(void) {
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    return load;
}

/* "cpu: <model name>" from /proc/cpuinfo, or the GPU's name when the CUDA backend runs. */
void bench_device_name(const exitrl_backend *be, char *buf, size_t n) {
#ifdef EXITRL_HAVE_CUDA
    struct cudaDeviceProp prop;
    if (!strcmp(be->name, "cuda") && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
        snprintf(buf, n, "%s", prop.name);
        return;
    }
#endif
    snprintf(buf, n, "cpu: unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *colon = strchr(line, ':');
        if (!colon) break;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(buf, n, "cpu: %s", colon);
        break;
    }
    fclose(f);
}

void bench_run_facts(const exitrl_backend *be, bench_run *run) {
    bench_device_name(be, run->device, sizeof run->device);
    bench_git_revision(run->git, sizeof run->git);
    bench_utc_date(run->date, sizeof run->date);
    exitrl_cpu_blas_info(run->blas, sizeof run->blas);
    run->peer_blas[0] = '\0';
}

void bench_json_head(FILE *f, const char *bench, const bench_run *run, const char *backend, const char *dtype,
                     const char *config) {
    fprintf(f, "{\"bench\":\"%s\",\"device\":", bench);
    bench_json_string(f, run->device);
    fprintf(f, ",\"backend\":\"%s\"", backend);
    if (dtype) fprintf(f, ",\"dtype\":\"%s\"", dtype);
    fprintf(f, ",\"git\":");
    bench_json_string(f, run->git);
    fprintf(f, ",\"date\":\"%s\",\"blas\":", run->date);
    bench_json_string(f, run->blas);
    if (run->peer_blas[0]) {
        fprintf(f, ",\"peer_blas\":");
        bench_json_string(f, run->peer_blas);
    }
    fprintf(f, ",\"config\":");
    bench_json_string(f, config);
}

FILE *bench_open_results(const char *out, int quick, const char *stem, int gpu, char *path, size_t n) {
    int len = out ? snprintf(path, n, "%s", out)
              : quick ? snprintf(path, n, "%s", "")
                      : snprintf(path, n, "%s/bench/results/%s_%s.jsonl", bench_source_dir(), stem,
                                 gpu ? "gpu" : "cpu");
    if (len < 0 || (size_t)len >= n) {
        fprintf(stderr, "%s: the results path is too long\n", bench_program);
        return NULL;
    }
    FILE *f = fopen(path[0] ? path : "/dev/null", "a");
    if (!f) fprintf(stderr, "%s: cannot open %s for appending: %s\n", bench_program, path, strerror(errno));
    return f;
}

exitrl_backend *bench_open(const char *device, int threads, char **argv, bench_run *run) {
    bench_pin_threads(threads, argv);
    exitrl_backend *be = backend_open(device, 0);
    if (be) {
        bench_run_facts(be, run);
        printf("%s: CPU backend BLAS: %s\n", bench_program, run->blas);
    }
    return be;
}

FILE *bench_peer_open(const char *cmd, const char *what) {
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) fprintf(stderr, "%s: cannot start the %s: %s\n", bench_program, what, strerror(errno));
    return p;
}

int bench_temp_dir(char *dir, size_t n, const char *stem) {
    snprintf(dir, n, "/tmp/exitrl_%s_XXXXXX", stem);
    if (mkdtemp(dir)) return 0;
    fprintf(stderr, "%s: cannot create a temporary directory: %s\n", bench_program, strerror(errno));
    return -1;
}

void bench_warn_load(double load, const char *direction) {
    if (load > 3)
        fprintf(stderr, "%s: warning: load average %.2f: other work is running, figures will be %s and noisy\n",
                bench_program, load, direction);
}

/* Writes s as a JSON string (quotes and backslashes escaped, control characters dropped). */
void bench_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

/* Picks an interpreter that imports torch; NULL (with the reason printed) when none does. */
const char *bench_find_python(const char *requested) {
    const char *env = getenv("EXITRL_PYTHON");
    const char *candidates[] = {requested ? requested : env ? env : "python3",
                                requested || env ? NULL : "/usr/bin/python3"};
    for (int i = 0; i < 2 && candidates[i]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", candidates[i]);
        if (system(cmd) == 0) return candidates[i];
    }
    fprintf(stderr, "%s: no Python with torch found (tried %s%s%s); the peers are "
            "skipped and no ratio is recorded\n", bench_program, candidates[0], candidates[1] ? ", " : "",
            candidates[1] ? candidates[1] : "");
    return NULL;
}

void bench_peer_blas(const char *python, bench_run *run) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "'%s' -c 'import re, torch; m = re.search(r\"BLAS_INFO=([^,\\s]+)\", torch.__config__.show()); "
             "print(\"torch %%s, BLAS %%s%%s, %%d threads\" %% (torch.__version__, m.group(1) if m else \"unknown\", "
             "\" + MKL\" if torch.backends.mkl.is_available() else \"\", torch.get_num_threads()))' 2>/dev/null",
             python);
    command_line(cmd, run->peer_blas, sizeof run->peer_blas);
    const char *core = getenv("OPENBLAS_CORETYPE"); /* inherited by the peer, as by our side */
    size_t n = strlen(run->peer_blas);
    if (core && n) snprintf(run->peer_blas + n, sizeof run->peer_blas - n, ", OPENBLAS_CORETYPE=%s", core);
}

/* The model's fp32 weights in host/model/model.h's flat layout, for the PyTorch peer. */
int bench_write_weights(const gpt_model *m, const char *path) {
    float *w = malloc(m->num_params * sizeof(float));
    if (!w) {
        fprintf(stderr, "%s: out of memory for the weights\n", bench_program);
        return -1;
    }
    m->backend->download(m->backend, w, m->master, m->num_params * sizeof(float));
    int rc = bench_write_file(path, w, m->num_params * sizeof(float));
    free(w);
    return rc;
}

int bench_write_file(const char *path, const void *data, size_t bytes) {
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(data, 1, bytes, f) != bytes;
    if (f) bad |= fclose(f) != 0;
    if (bad) fprintf(stderr, "%s: cannot write %s: %s\n", bench_program, path, strerror(errno));
    return bad ? -1 : 0;
}

int bench_parse_int(const char *opt, const char *s, int min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min || v > 1000000) {
        fprintf(stderr, "%s: %s expects an integer >= %d, got '%s'\n", bench_program, opt, min, s);
        exit(2);
    }
    return (int)v;
}

static const bench_option help_option = {"--help", NULL, BENCH_FLAG, NULL, 0, NULL, "this text"};

static int option_width(const bench_option *o) {
    return (int)strlen(o->name) + (o->arg ? 1 + (int)strlen(o->arg) : 0);
}

static void print_option(FILE *f, const bench_option *o, int width) {
    char head[64];
    snprintf(head, sizeof head, "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    const char *h = o->help;
    int len = (int)strcspn(h, "\n");
    fprintf(f, "  %-*s%.*s\n", width, head, len, h);
    for (h += len; *h; h += len) {
        h++; /* the newline */
        len = (int)strcspn(h, "\n");
        fprintf(f, "  %-*s%.*s\n", width, "", len, h);
    }
}

void bench_usage(FILE *f, const bench_option *opts, const char *about) {
    int width = option_width(&help_option);
    for (const bench_option *o = opts; o->name; o++)
        if (option_width(o) > width) width = option_width(o);
    width += 3;
    fprintf(f, "usage: %s [options]\n%s", bench_program, about);
    for (const bench_option *o = opts; o->name; o++) print_option(f, o, width);
    print_option(f, &help_option, width);
}

void bench_parse_options(int argc, char **argv, const bench_option *opts, const char *about) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, help_option.name)) {
            bench_usage(stdout, opts, about);
            exit(0);
        }
        const bench_option *o = opts;
        while (o->name && strcmp(a, o->name)) o++;
        if (!o->name || (o->kind != BENCH_FLAG && i + 1 >= argc)) {
            fprintf(stderr, "%s: %s '%s'\n", bench_program, o->name ? "missing value for" : "unknown option", a);
            bench_usage(stderr, opts, about);
            exit(2);
        }
        switch (o->kind) {
        case BENCH_FLAG: *(int *)o->ptr = o->n; break;
        case BENCH_STRING: *(const char **)o->ptr = argv[++i]; break;
        case BENCH_INT: *(int *)o->ptr = bench_parse_int(a, argv[++i], o->n); break;
        case BENCH_CALL: o->call(argv[++i], o->ptr); break;
        }
    }
}

/* $EXITRL_GIT_REVISION first: a copy of the source tree without its .git (as on a lent GPU
 * machine) is told its revision that way. */
void bench_git_revision(char *buf, size_t n) {
    const char *env = getenv("EXITRL_GIT_REVISION");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return;
    }
    char cmd[4096 + 64];
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse --short HEAD 2>/dev/null", bench_source_dir());
    command_line(cmd, buf, n);
    if (!buf[0]) snprintf(buf, n, "unknown");
}

void bench_utc_date(char *buf, size_t n) {
    time_t t = time(NULL);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

double bench_json_number(const char *line, const char *key) {
    char pattern[96];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(line, pattern);
    return at ? strtod(at + strlen(pattern), NULL) : -1;
}

int bench_json_text(const char *line, const char *key, char *buf, size_t n) {
    char pattern[96];
    snprintf(pattern, sizeof pattern, "\"%s\": \"", key);
    const char *at = strstr(line, pattern);
    if (!at) {
        snprintf(buf, n, "%s", "");
        return 0;
    }
    at += strlen(pattern);
    snprintf(buf, n, "%.*s", (int)strcspn(at, "\""), at);
    return 1;
}

double bench_peak_bandwidth(const exitrl_backend *be) {
#ifdef EXITRL_HAVE_CUDA
    int clock_khz = 0, bus_bits = 0;
    if (!strcmp(be->name, "cuda") && cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess && clock_khz > 0 &&
        bus_bits > 0)
        return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0);
#endif
    (void)be;
    return -1;
}

/* Dense (not 2:4 sparse) bf16 tensor-core peaks from NVIDIA's datasheets, matched by a substring
 * of the driver's device name, first match wins. The NVL parts (lower clocks and power) are
 * marked unknown (-1) before the generic H100 / H200 names can match them; the PCIe H100 comes
 * before the SXM names. */
static const struct {
    const char *name_part;
    double flops;
} bf16_peaks[] = {
    {"NVL", -1},
    {"H100 PCIe", 756e12},
    {"H100 80GB HBM3", 989.4e12}, /* the SXM part */
    {"H100 SXM", 989.4e12},
    {"H200", 989.4e12},
    {"A100", 312e12},
};

double bench_bf16_peak_flops(const char *device) {
    for (size_t i = 0; i < sizeof bf16_peaks / sizeof bf16_peaks[0]; i++)
        if (strstr(device, bf16_peaks[i].name_part)) return bf16_peaks[i].flops;
    return -1;
}

double bench_train_flops_per_token(const gpt_config *c, int T) {
    return 6.0 * (double)gpt_num_params(c) + 12.0 * c->n_layer * c->d_model * (double)T;
}
