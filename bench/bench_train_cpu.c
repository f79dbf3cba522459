/* CPU training-step benchmark: exitrl's gpt_forward_backward + gpt_update against the PyTorch CPU
 * peer (bench/peers/train_step_torch.py) on the same shapes and thread count, measured in the same
 * run. Prints a table and appends one JSONL object per config to bench/results/train_step_cpu.jsonl
 * (DESIGN.md section 10 fields; ratio = ours / peer tokens/s, higher is better). Both sides report
 * the median step time, so a step slowed by other work on the machine does not decide the result. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "model.h"
#include "ops.h"

#define PEER_SCRIPT EXITRL_SOURCE_DIR "/bench/peers/train_step_torch.py"
#define DEFAULT_OUT EXITRL_SOURCE_DIR "/bench/results/train_step_cpu.jsonl"

typedef struct {
    const char *configs, *out, *python;
    int steps, warmup, threads, batch, seq, peer;
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_train_cpu [options]\n"
            "Times one training step (forward, backward, AdamW) of exitrl's CPU backend and of a\n"
            "PyTorch CPU peer on the same shapes; appends JSONL results.\n"
            "  --configs LIST   comma-separated model presets (default tiny,small)\n"
            "  --steps N        timed steps per config (default 5)\n"
            "  --warmup N       untimed steps first (default 2)\n"
            "  --threads N      threads for both sides (default 2; sets OMP_NUM_THREADS)\n"
            "  --batch B        batch size (default 8 for tiny, 4 otherwise)\n"
            "  --seq T          sequence length (default 128)\n"
            "  --out PATH       JSONL file to append to (default bench/results/train_step_cpu.jsonl)\n"
            "  --python PATH    interpreter with torch for the peer (default $EXITRL_PYTHON, else\n"
            "                   the first of python3, /usr/bin/python3 that imports torch)\n"
            "  --no-peer        time exitrl only (no ratio is recorded)\n"
            "  --help           this text\n");
}

static void parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){"tiny,small", DEFAULT_OUT, NULL, 5, 2, 2, 0, 128, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--no-peer")) { o->peer = 0; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_train_cpu: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--configs")) o->configs = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--python")) o->python = v;
        else if (!strcmp(a, "--steps")) o->steps = bench_parse_int(a, v, 1);
        else if (!strcmp(a, "--warmup")) o->warmup = bench_parse_int(a, v, 0);
        else if (!strcmp(a, "--threads")) o->threads = bench_parse_int(a, v, 1);
        else if (!strcmp(a, "--batch")) o->batch = bench_parse_int(a, v, 1);
        else if (!strcmp(a, "--seq")) o->seq = bench_parse_int(a, v, 1);
        else {
            fprintf(stderr, "bench_train_cpu: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
    }
}

/* Runs the PyTorch peer on the same shapes; returns its tokens/s, or -1 with the reason printed. */
static double run_peer(const char *python, const gpt_config *c, int B, int T, const bench_opts *o) {
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --n_layer %d --n_head %d --d_model %d --seq %d --batch %d "
             "--vocab_padded %d --vocab %d --max_seq %d --threads %d --steps %d --warmup %d",
             python, PEER_SCRIPT, c->n_layer, c->n_head, c->d_model, T, B, c->vocab_padded,
             c->vocab, c->max_seq, o->threads, o->steps, o->warmup);
    FILE *p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "bench_train_cpu: cannot start the peer: %s\n", strerror(errno));
        return -1;
    }
    double value = -1;
    while (fgets(line, sizeof line, p)) {
        const char *key = strstr(line, "\"tokens_per_s\":");
        if (key) value = strtod(key + strlen("\"tokens_per_s\":"), NULL);
    }
    int status = pclose(p);
    if (status != 0 || !(value > 0)) {
        fprintf(stderr, "bench_train_cpu: the peer failed (status %d): %s\n", status, cmd);
        return -1;
    }
    return value;
}

/* Times our training step; returns tokens/s, or -1 when the model cannot be built. */
static double run_ours(exitrl_backend *be, const gpt_config *c, int B, int T, const bench_opts *o,
                       double *step_ms) {
    gpt_model m;
    if (gpt_create(&m, be, c, B, T) != 0) return -1;
    gpt_init_random(&m, 1234);
    size_t BT = (size_t)B * T;
    int *tokens = malloc(BT * sizeof(int)), *targets = malloc(BT * sizeof(int));
    if (!tokens || !targets) {
        fprintf(stderr, "bench_train_cpu: out of memory for a %dx%d batch\n", B, T);
        exit(1);
    }
    unsigned long long s = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < BT; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tokens[i] = (int)((s >> 33) % (unsigned)c->vocab);
        targets[i] = (int)((s >> 13) % (unsigned)c->vocab);
    }
    gpt_set_batch(&m, tokens, targets, NULL, B, T);
    const gpt_adamw_params opt = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    double *times = malloc(o->steps * sizeof(double));
    if (!times) {
        fprintf(stderr, "bench_train_cpu: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < o->warmup + o->steps; i++) {
        double t0 = bench_now();
        gpt_zero_grad(&m);
        gpt_forward_backward(&m, B, T);
        gpt_update(&m, &opt);
        if (i >= o->warmup) times[i - o->warmup] = bench_now() - t0;
    }
    double step_s = bench_median(times, o->steps);
    *step_ms = step_s * 1e3;
    free(times);
    free(tokens);
    free(targets);
    gpt_destroy(&m);
    return BT / step_s;
}

int main(int argc, char **argv) {
    bench_program = "bench_train_cpu";
    bench_opts o;
    parse_args(argc, argv, &o);
    bench_pin_threads(o.threads, argv);

    char device[300], git[64], date[32];
    bench_git_revision(git, sizeof git);
    bench_utc_date(date, sizeof date);

    const char *python = o.peer ? bench_find_python(o.python) : NULL;
    FILE *out = fopen(o.out, "a");
    if (!out) {
        fprintf(stderr, "bench_train_cpu: cannot open %s for appending: %s\n", o.out, strerror(errno));
        return 1;
    }
    exitrl_backend *be = exitrl_backend_cpu_create();
    if (!be) {
        fprintf(stderr, "bench_train_cpu: cannot create the CPU backend\n");
        return 1;
    }
    bench_device_name(be, device, sizeof device);

    const double load = bench_load_average();
    printf("train step on %s, %d threads, %d timed steps after %d warmup, load average %.2f\n",
           device, o.threads, o.steps, o.warmup, load);
    printf("%-10s %4s %5s %10s %12s %10s %12s %8s\n", "config", "B", "T", "params", "ours tok/s",
           "ours ms", "torch tok/s", "ratio");
    int rc = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", o.configs);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        gpt_config c;
        if (gpt_config_preset(name, &c) != 0) { rc = 2; continue; }
        int B = o.batch ? o.batch : (!strcmp(name, "tiny") ? 8 : 4), T = o.seq;
        if (T > c.max_seq) {
            fprintf(stderr, "bench_train_cpu: --seq %d exceeds %s's max_seq %d\n", T, name, c.max_seq);
            rc = 2;
            continue;
        }
        double step_ms = 0, ours = run_ours(be, &c, B, T, &o, &step_ms);
        if (ours < 0) { rc = 1; continue; }
        double peer = python ? run_peer(python, &c, B, T, &o) : -1;
        printf("%-10s %4d %5d %10zu %12.1f %10.1f ", name, B, T, gpt_num_params(&c), ours, step_ms);
        if (peer > 0) printf("%12.1f %8.3f\n", peer, ours / peer);
        else printf("%12s %8s\n", "-", "-");

        fprintf(out, "{\"bench\":\"train_step\",\"device\":");
        bench_json_string(out, device);
        fprintf(out, ",\"git\":");
        bench_json_string(out, git);
        fprintf(out, ",\"date\":\"%s\",\"config\":", date);
        bench_json_string(out, name);
        fprintf(out, ",\"B\":%d,\"T\":%d,\"params\":%zu,\"threads\":%d,\"steps\":%d,"
                "\"loadavg_1m\":%.2f,\"step_ms\":%.3f,\"value\":%.2f,\"unit\":\"tokens/s\"",
                B, T, gpt_num_params(&c), o.threads, o.steps, load, step_ms, ours);
        if (peer > 0)
            fprintf(out, ",\"peer\":\"torch.cpu\",\"peer_value\":%.2f,\"ratio\":%.4f", peer,
                    ours / peer);
        fprintf(out, "}\n");
        fflush(out);
    }
    fclose(out);
    be->destroy(be);
    printf("appended to %s\n", o.out);
    return rc;
}
