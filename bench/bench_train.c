/* Training-step benchmark: tokens/s of exitrl's gpt_train_step (forward, backward, AdamW) against PyTorch
 * peers (bench/peers/train_step_torch.py) on the same shapes, measured in the same run.
 * - CPU backend: fp32, the peer is PyTorch eager on the CPU with the same thread count ("torch.cpu").
 * - CUDA backend: bf16 activations with fp32 master weights; the peers are PyTorch eager and
 *   torch.compile of the same model under bf16 autocast with fused AdamW ("torch.eager",
 *   "torch.compile"), and MFU is recorded for every side:
 *     model FLOPs per token = 6 * N_params + 12 * n_layer * d_model * T   (bench_common.h)
 *     MFU = tokens/s * FLOPs per token / the device's dense bf16 peak (bench_common.c's table;
 *           a device not in it gets no MFU, with a note).
 * Prints a table and appends one JSONL object per (config, peer) to
 * bench/results/train_step_<cpu|gpu>.jsonl (docs/DESIGN.md §10; ratio = ours / peer tokens/s,
 * higher is better). Every side reports the median step time, so a step slowed by other work on
 * the machine does not decide the result. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "model/model.h"
#include "ops.h"

#define PEER_SCRIPT bench_peer_script("train_step_torch.py")
/* The targets for the CUDA backend on an H100 (recorded with every GPU result). */
#define TARGET_RATIO_VS_COMPILE 1.1
#define TARGET_MFU 0.50

typedef struct {
    const char *configs, *out, *python, *device;
    int steps, warmup, threads, batch, seq, vocab, peer, compile;
} bench_opts;

static const char ABOUT[] =
    "Times one training step (forward, backward, global-norm clip, AdamW) of exitrl and of\n"
    "PyTorch peers on the same shapes; appends JSONL results. Defaults depend on the backend:\n"
    "  CPU:  --configs tiny,small --batch 8 (tiny) or 4 --seq 128 --steps 5 --warmup 2\n"
    "        peer: PyTorch eager, fp32, same threads\n"
    "  CUDA: --configs gpt2-124m --batch 16 --seq 1024 --steps 30 --warmup 5\n"
    "        peers: PyTorch eager and torch.compile, bf16 autocast, fused AdamW; MFU recorded\n";

/* Options left 0 / NULL get backend-dependent defaults later (apply_defaults). */
static void parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.device = "auto", .threads = 2, .peer = 1, .compile = 1, .warmup = -1};
    const bench_option opts[] = {
        BENCH_OPT_DEVICE(&o->device),
        BENCH_OPT_STRING("--configs", "LIST", &o->configs, "comma-separated model presets (tiny, small, gpt2-124m)"),
        BENCH_OPT_INT("--steps", "N", &o->steps, 1, "timed steps per config"),
        BENCH_OPT_INT("--warmup", "N", &o->warmup, 0, "untimed steps first (torch.compile compiles during these)"),
        BENCH_OPT_THREADS(&o->threads),
        BENCH_OPT_INT("--batch", "B", &o->batch, 1, "batch size"),
        BENCH_OPT_INT("--seq", "T", &o->seq, 1, "sequence length"),
        BENCH_OPT_INT("--vocab", "V", &o->vocab, 1,
                      "real vocabulary size instead of the preset's byte vocabulary, e.g.\n"
                      "50257 for GPT-2's tokenizer (padded rows: V rounded up to 128)"),
        BENCH_OPT_OUT(&o->out, "(default bench/results/train_step_cpu.jsonl\nor train_step_gpu.jsonl by backend)"),
        BENCH_OPT_PYTHON(&o->python, "the peers"),
        BENCH_OPT_NO_PEER(&o->peer, "time exitrl only (no ratio is recorded)"),
        {"--no-compile", NULL, BENCH_FLAG, &o->compile, 0, NULL, "skip the torch.compile peer (CUDA)"},
        {0},
    };
    bench_parse_options(argc, argv, opts, ABOUT);
    if (o->configs && strlen(o->configs) >= 256) {
        fprintf(stderr, "bench_train: --configs list is too long\n");
        exit(2);
    }
}

static void apply_defaults(bench_opts *o, int gpu) {
    if (!o->configs) o->configs = gpu ? "gpt2-124m" : "tiny,small";
    if (!o->steps) o->steps = gpu ? 30 : 5;
    if (o->warmup < 0) o->warmup = gpu ? 5 : 2;
    if (!o->seq) o->seq = gpu ? 1024 : 128;
}

typedef struct {
    double tokens_per_s, step_ms, compile_s; /* compile_s: the untimed warmup steps, or -1 */
} peer_result;

/* Runs the PyTorch peer in mode "cpu", "eager" or "compile" on the same shapes; returns 0, or -1
 * with the reason printed. */
static int run_peer(const char *python, const char *mode, const gpt_config *c, int B, int T,
                    const bench_opts *o, peer_result *r) {
    char cmd[2048], line[1024];
    const int cpu = !strcmp(mode, "cpu");
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --n_layer %d --n_head %d --d_model %d --seq %d --batch %d "
             "--vocab_padded %d --vocab %d --max_seq %d --threads %d --steps %d --warmup %d "
             "--device %s --dtype %s%s",
             python, PEER_SCRIPT, c->n_layer, c->n_head, c->d_model, T, B, c->vocab_padded,
             c->vocab, c->max_seq, o->threads, o->steps, o->warmup, cpu ? "cpu" : "cuda",
             cpu ? "fp32" : "bf16", !strcmp(mode, "compile") ? " --compile" : "");
    FILE *p = bench_peer_open(cmd, "peer");
    if (!p) return -1;
    *r = (peer_result){-1, -1, -1};
    while (fgets(line, sizeof line, p)) {
        if (!strstr(line, "\"tokens_per_s\": ")) continue;
        r->tokens_per_s = bench_json_number(line, "tokens_per_s");
        r->step_ms = bench_json_number(line, "step_ms");
        r->compile_s = bench_json_number(line, "compile_s");
    }
    int status = pclose(p);
    if (status != 0 || !(r->tokens_per_s > 0)) {
        fprintf(stderr, "bench_train: the %s peer failed (status %d): %s\n", mode, status, cmd);
        return -1;
    }
    return 0;
}

/* Times our training step; returns tokens/s, or -1 when the model cannot be built. */
static double run_ours(exitrl_backend *be, const gpt_config *c, int B, int T, const bench_opts *o,
                       double *step_ms) {
    gpt_model m;
    if (gpt_create(&m, be, c, B, T) != 0) return -1;
    gpt_init_random(&m, 1234);
    size_t BT = (size_t)B * T;
    int *tokens = malloc(BT * sizeof(int)), *targets = malloc(BT * sizeof(int));
    double *times = malloc(o->steps * sizeof(double));
    if (!tokens || !targets || !times) {
        fprintf(stderr, "bench_train: out of memory for a %dx%d batch\n", B, T);
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
    for (int i = 0; i < o->warmup + o->steps; i++) {
        double t0 = bench_now();
        /* The whole step (replayed from a CUDA graph after the second call on a GPU); reading the
         * loss and the gradient norm waits for it. */
        gpt_train_step(&m, B, T, &opt, NULL);
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

/* What one JSONL object holds besides the peer. */
typedef struct {
    FILE *out;
    const bench_run *run;
    const char *backend, *config;
    const bench_opts *o;
    const gpt_config *c;
    int B, T;
    double load, step_ms, value, flops_per_token, peak; /* peak <= 0: no MFU */
} record;

static double mfu(const record *r, double tokens_per_s) {
    return tokens_per_s * r->flops_per_token / r->peak;
}

/* One JSONL object: our measurement, then the peer's when peer != NULL. On the CUDA backend the
 * MFU of each side, and with `target` the targets and whether they were met. */
static void write_record(const record *r, const char *peer, const peer_result *p, int target) {
    FILE *f = r->out;
    const int gpu = !strcmp(r->backend, "cuda");
    bench_json_head(f, "train_step", r->run, r->backend, gpu ? "bf16" : "fp32", r->config);
    fprintf(f, ",\"B\":%d,\"T\":%d,\"V\":%d,\"Vp\":%d,\"params\":%zu,\"threads\":%d,\"steps\":%d,"
            "\"warmup\":%d,\"loadavg_1m\":%.2f,\"step_ms\":%.3f,\"value\":%.2f,\"unit\":\"tokens/s\"",
            r->B, r->T, r->c->vocab, r->c->vocab_padded, gpt_num_params(r->c), r->o->threads, r->o->steps,
            r->o->warmup, r->load, r->step_ms, r->value);
    if (gpu) {
        fprintf(f, ",\"flops_per_token\":%.6g", r->flops_per_token);
        if (r->peak > 0) fprintf(f, ",\"peak_tflops\":%.1f,\"mfu\":%.4f", r->peak * 1e-12, mfu(r, r->value));
        else fprintf(f, ",\"mfu_note\":\"no dense bf16 peak known for this device: MFU omitted\"");
    }
    if (peer) {
        fprintf(f, ",\"peer\":\"%s\",\"peer_value\":%.2f,\"peer_step_ms\":%.3f,\"ratio\":%.4f", peer,
                p->tokens_per_s, p->step_ms, r->value / p->tokens_per_s);
        if (gpu && r->peak > 0) fprintf(f, ",\"peer_mfu\":%.4f", mfu(r, p->tokens_per_s));
        if (p->compile_s > 0) fprintf(f, ",\"peer_warmup_s\":%.2f", p->compile_s);
    }
    if (target) {
        fprintf(f, ",\"target\":\"ratio >= %.2f vs torch.compile and mfu >= %.2f (H100)\",\"met\":",
                TARGET_RATIO_VS_COMPILE, TARGET_MFU);
        if (!peer || strcmp(peer, "torch.compile"))
            fprintf(f, "null,\"note\":\"no torch.compile figure in this run\"");
        else if (r->peak <= 0)
            fprintf(f, "null,\"note\":\"MFU unknown on this device\"");
        else
            fprintf(f, "%s", r->value / p->tokens_per_s >= TARGET_RATIO_VS_COMPILE &&
                                     mfu(r, r->value) >= TARGET_MFU ? "true" : "false");
    }
    fprintf(f, "}\n");
    fflush(f);
}

/* Measures one preset and writes its records; returns 0, 1 (a failure) or 2 (bad input). */
static int bench_config(exitrl_backend *be, const char *name, const bench_opts *o, const char *python,
                        record *rec) {
    gpt_config c;
    if (gpt_config_preset(name, &c) != 0) return 2;
    if (o->vocab) {
        c.vocab = o->vocab;
        c.vocab_padded = (o->vocab + 127) / 128 * 128;
    }
    const int gpu = !strcmp(be->name, "cuda");
    const int B = o->batch ? o->batch : gpu ? 16 : !strcmp(name, "tiny") ? 8 : 4, T = o->seq;
    if (T > c.max_seq) {
        fprintf(stderr, "bench_train: --seq %d exceeds %s's max_seq %d\n", T, name, c.max_seq);
        return 2;
    }
    rec->config = name;
    rec->c = &c;
    rec->B = B;
    rec->T = T;
    rec->load = bench_load_average();
    rec->flops_per_token = bench_train_flops_per_token(&c, T);
    rec->value = run_ours(be, &c, B, T, o, &rec->step_ms);
    if (rec->value < 0) return 1;
    printf("%-10s %3d %5d %6d %11zu %11.1f %9.2f", name, B, T, c.vocab, gpt_num_params(&c), rec->value,
           rec->step_ms);
    if (gpu && rec->peak > 0) printf(" %6.1f%%", 100 * mfu(rec, rec->value));
    printf("\n");
    fflush(stdout);

    static const char *const cpu_modes[] = {"cpu"}, *const gpu_modes[] = {"eager", "compile"};
    const char *const *modes = gpu ? gpu_modes : cpu_modes;
    const int n_modes = gpu ? (o->compile ? 2 : 1) : 1;
    int rc = 0, written = 0, target_written = 0;
    for (int k = 0; python && k < n_modes; k++) {
        peer_result p;
        if (run_peer(python, modes[k], &c, B, T, o, &p)) {
            rc = 1;
            continue;
        }
        char peer_name[32];
        snprintf(peer_name, sizeof peer_name, "torch.%s", modes[k]);
        const int target = gpu && k == n_modes - 1;
        write_record(rec, peer_name, &p, target);
        written++;
        target_written |= target;
        printf("  %-13s %11.1f %9.2f", peer_name, p.tokens_per_s, p.step_ms);
        if (gpu && rec->peak > 0) printf(" %6.1f%%", 100 * mfu(rec, p.tokens_per_s));
        printf("   ours / peer = %.3f", rec->value / p.tokens_per_s);
        if (p.compile_s > 0) printf("   (warmup with compilation %.1f s)", p.compile_s);
        printf("\n");
        fflush(stdout);
    }
    /* Without a peer line, or on a GPU without the line that carries the target (its peer
     * failed), a line of our own. */
    if (!written || (gpu && !target_written)) write_record(rec, NULL, NULL, gpu);
    return rc;
}

int main(int argc, char **argv) {
    exitrl_cpu_blas_choose_core(argv); /* before timing anything (see ops.h) */
    bench_program = "bench_train";
    bench_opts o;
    parse_args(argc, argv, &o);
    bench_run run;
    exitrl_backend *be = bench_open(o.device, o.threads, argv, &run);
    if (!be) return 1;
    const int gpu = !strcmp(be->name, "cuda");
    apply_defaults(&o, gpu);

    char out_path[4096];
    FILE *out = bench_open_results(o.out, 0, "train_step", gpu, out_path, sizeof out_path);
    if (!out) {
        be->destroy(be);
        return 1;
    }
    const char *python = o.peer ? bench_find_python(o.python) : NULL;
    if (python) bench_peer_blas(python, &run);
    record rec = {.out = out, .run = &run, .backend = be->name, .o = &o,
                  .peak = gpu ? bench_bf16_peak_flops(run.device) : -1};

    const double load = bench_load_average();
    printf("train step on %s (%s backend, %s), %d threads, median of %d steps after %d warmup, "
           "load average %.2f\n",
           run.device, be->name, gpu ? "bf16 activations, fp32 master weights" : "fp32", o.threads, o.steps, o.warmup,
           load);
    if (gpu && rec.peak > 0)
        printf("MFU against a dense bf16 peak of %.1f TFLOP/s; FLOPs per token = 6 N + 12 L C T\n", rec.peak * 1e-12);
    else if (gpu)
        printf("no dense bf16 peak known for '%s': MFU is not recorded\n", run.device);
    bench_warn_load(load, "low");
    printf("%-10s %3s %5s %6s %11s %11s %9s%s\n", "config", "B", "T", "V", "params", "tokens/s", "step ms",
           gpu && rec.peak > 0 ? "     MFU" : "");
    int rc = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", o.configs);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int r = bench_config(be, name, &o, python, &rec);
        if (r > rc) rc = r;
    }
    fclose(out);
    be->destroy(be);
    printf("appended to %s\n", out_path);
    return rc;
}
