/* Rollout benchmark: generated tokens/s of exitrl's KV-cache rollout engine (host/rl/rollout.h) against
 * peers measured in the same run on the same weights and prompts: a plain PyTorch KV-cache loop
 * (bench/peers/rollout_torch.py; "torch.cpu" on the CPU, "torch.eager" on a GPU), Hugging Face
 * transformers' generate on an `exitrl export` of the weights ("hf.generate", on a GPU or with --hf),
 * and on a GPU the memory-bandwidth roofline of the decode steps ("roofline").
 * Sampling is at temperature 1 over the real vocabulary and stops at EOS: a random model draws EOS
 * now and then, so every side counts the tokens it actually generated (EOS included).
 * Prints a table and appends one JSONL object per (measurement, peer) to
 * bench/results/rollout_<cpu|gpu>.jsonl (docs/DESIGN.md §10; ratio = ours / peer, higher is
 * better). Each side reports the median of its timed runs. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "ops.h"
#include "cli/commands.h"
#include "model/model.h"
#include "model/model_io.h"
#include "rl/rollout.h"
#include "model/tokenizer.h"

#define PEER_SCRIPT bench_peer_script("rollout_torch.py")
#define MAX_BATCHES 16
#define WEIGHT_SEED 1234
#define SAMPLING_SEED 1

typedef struct {
    const char *configs, *out, *python, *device;
    int batches[MAX_BATCHES], n_batches;
    int prompt_len, new_tokens, reps, warmup, threads, peer, hf, quick;
    int group, no_share; /* sequences per distinct prompt; 1: share_prefix off in the engine */
    int no_panels;       /* 1: the engine's use_panels off (decode multiplies by the weights as they are) */
} bench_opts;

static const char ABOUT[] =
    "Times batched sampling (prompt prefill + decode with a KV cache, temperature 1, stop at\n"
    "EOS) of exitrl's rollout engine and of peers on the same weights and prompts; appends\n"
    "JSONL results. Defaults depend on the backend that runs:\n"
    "  CPU:  --configs tiny,small --batches 16,64,256 --prompt-len 64 --new-tokens 64\n"
    "  CUDA: --configs small,gpt2-124m --batches 64,256,1024 --prompt-len 64 --new-tokens 128\n";

static void parse_batches(const char *s, bench_opts *o) {
    char list[256];
    if (strlen(s) >= sizeof list) {
        fprintf(stderr, "bench_rollout: --batches list is too long\n");
        exit(2);
    }
    snprintf(list, sizeof list, "%s", s);
    o->n_batches = 0;
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (o->n_batches == MAX_BATCHES) {
            fprintf(stderr, "bench_rollout: --batches takes at most %d sizes\n", MAX_BATCHES);
            exit(2);
        }
        o->batches[o->n_batches++] = bench_parse_int("--batches", item, 1);
    }
    if (!o->n_batches) {
        fprintf(stderr, "bench_rollout: --batches needs at least one size\n");
        exit(2);
    }
}

static void parse_batches_option(const char *value, void *o) { parse_batches(value, o); }

/* Options left 0 / NULL get backend-dependent defaults later (apply_defaults). */
static void parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.device = "auto", .reps = 3, .warmup = 1, .threads = 2, .peer = 1, .group = 1};
    const bench_option opts[] = {
        BENCH_OPT_STRING("--configs", "LIST", &o->configs, "comma-separated model presets (tiny, small, gpt2-124m)"),
        {"--batches", "LIST", BENCH_CALL, o, 0, parse_batches_option,
         "comma-separated batch sizes (sequences generated together)"},
        BENCH_OPT_INT("--prompt-len", "N", &o->prompt_len, 1, "prompt tokens per sequence (BOS then random bytes)"),
        BENCH_OPT_INT("--new-tokens", "N", &o->new_tokens, 1, "tokens to generate per sequence at most"),
        BENCH_OPT_INT("--group", "G", &o->group, 1, "consecutive sequences share one prompt, as a GRPO group does\n"
                                                   "(default 1: every prompt differs)"),
        {"--no-share", NULL, BENCH_FLAG, &o->no_share, 1, NULL,
         "prefill every sequence's prompt itself (the engine's share_prefix off)"},
        {"--no-panels", NULL, BENCH_FLAG, &o->no_panels, 1, NULL,
         "decode on the weights as they are (the engine's use_panels off; ops.h panel_weight)"},
        BENCH_OPT_INT("--reps", "N", &o->reps, 1, "timed runs per measurement (default 3)"),
        BENCH_OPT_INT("--warmup", "N", &o->warmup, 0, "untimed runs first (default 1)"),
        BENCH_OPT_THREADS(&o->threads),
        BENCH_OPT_DEVICE(&o->device),
        BENCH_OPT_OUT(&o->out, "(default bench/results/rollout_cpu.jsonl or\nrollout_gpu.jsonl by backend)"),
        BENCH_OPT_PYTHON(&o->python, "the peers"),
        BENCH_OPT_NO_PEER(&o->peer, "time exitrl only (no ratio is recorded; the roofline still is)"),
        {"--hf", NULL, BENCH_FLAG, &o->hf, 1, NULL, "also run the hf.generate peer on the CPU (always on with CUDA)"},
        BENCH_OPT_QUICK(&o->quick, "smoke test: tiny, batch 4, 16-token prompts, 16 new tokens, 1 run,\n"
                                   "no warmup; appends only when --out is given"),
        {0},
    };
    bench_parse_options(argc, argv, opts, ABOUT);
}

static void apply_defaults(bench_opts *o, int gpu) {
    if (o->quick) {
        if (!o->configs) o->configs = "tiny";
        if (!o->n_batches) o->batches[o->n_batches++] = 4;
        if (!o->prompt_len) o->prompt_len = 16;
        if (!o->new_tokens) o->new_tokens = 16;
        o->reps = 1;
        o->warmup = 0;
        return;
    }
    if (!o->configs) o->configs = gpu ? "small,gpt2-124m" : "tiny,small";
    if (!o->n_batches) parse_batches(gpu ? "64,256,1024" : "16,64,256", o);
    if (!o->prompt_len) o->prompt_len = 64;
    if (!o->new_tokens) o->new_tokens = gpu ? 128 : 64;
}

/* Files shared with the peers, in a private temporary directory. */
typedef struct {
    char dir[64], weights[96], prompts[96], ckpt[96], hf[96];
} peer_files;

/* A checkpoint of the model exported with `exitrl export` into files->hf (transformers' format). */
static int export_hf(gpt_model *m, const peer_files *files) {
    char err[512];
    if (model_save(files->ckpt, m, NULL, 0, err, sizeof err)) {
        fprintf(stderr, "bench_rollout: %s\n", err);
        return -1;
    }
    char *args[] = {"--checkpoint", (char *)files->ckpt, "--out", (char *)files->hf};
    fflush(stdout);
    return cmd_export(4, args) == 0 ? 0 : -1;
}

static void remove_files(const peer_files *files) {
    static const char *const hf_names[] = {"model.safetensors", "config.json", "check.bin"};
    char path[160];
    for (size_t i = 0; i < sizeof hf_names / sizeof hf_names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", files->hf, hf_names[i]);
        remove(path);
    }
    remove(files->hf);
    remove(files->weights);
    remove(files->prompts);
    remove(files->ckpt);
    remove(files->dir);
}

typedef struct {
    char name[32];
    double tokens_per_s;
    long gen_tokens;
} peer_result;

/* Runs the PyTorch peer script; fills up to max results (one per peer it ran) and returns their
 * count, or -1 with the reason printed. Peers the script skipped are reported on stderr. */
static int run_peers(const char *python, const gpt_config *c, int B, const bench_opts *o,
                     const peer_files *files, const exitrl_backend *be, int with_hf, peer_result *res,
                     int max) {
    char cmd[4096], line[1024];
    int gpu = !strcmp(be->name, "cuda");
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --n_layer %d --n_head %d --d_model %d --max_seq %d --vocab %d "
             "--vocab_padded %d --weights '%s' --prompts '%s' --batch %d --prompt_len %d "
             "--new_tokens %d --eos %d --temperature 1 --seed %d --threads %d --reps %d --warmup %d "
             "--device %s --dtype %s%s%s%s",
             python, PEER_SCRIPT, c->n_layer, c->n_head, c->d_model, c->max_seq, c->vocab,
             c->vocab_padded, files->weights, files->prompts, B, o->prompt_len, o->new_tokens, TOK_EOS,
             SAMPLING_SEED, o->threads, o->reps, o->warmup, gpu ? "cuda" : "cpu",
             be->act_dtype == EXITRL_BF16 ? "bf16" : "fp32", with_hf ? " --hf '" : "",
             with_hf ? files->hf : "", with_hf ? "'" : "");
    FILE *p = bench_peer_open(cmd, "peer");
    if (!p) return -1;
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        char name[sizeof res->name], skip[512];
        if (!bench_json_text(line, "peer", name, sizeof name)) continue;
        if (bench_json_text(line, "skipped", skip, sizeof skip)) {
            fprintf(stderr, "bench_rollout: peer %s skipped: %s\n", name, skip);
            continue;
        }
        const double gen = bench_json_number(line, "gen_tokens");
        if (gen < 0 || n == max) continue;
        snprintf(res[n].name, sizeof res[n].name, "%s", name);
        res[n].tokens_per_s = bench_json_number(line, "tokens_per_s");
        res[n].gen_tokens = (long)gen;
        if (res[n].tokens_per_s > 0) n++;
    }
    int status = pclose(p);
    if (status != 0) {
        fprintf(stderr, "bench_rollout: the peer failed (status %d): %s\n", status, cmd);
        return -1;
    }
    return n;
}

/* Tokens/s the decode steps could reach if each only streamed what it must move through device
 * memory: the weights (compute copy, less wpe, of which a step reads one row per sequence), the KV
 * cache up to the current position and the cache writes; the prefill counts as one pass over the
 * weights writing the prompt's cache. Activations are left out, so this bounds from above. */
static double roofline_tokens_per_s(const gpt_model *m, int B, int prompt_len, int new_tokens, double bandwidth) {
    const gpt_config *c = &m->cfg;
    const double act = (double)exitrl_dtype_size(m->backend->act_dtype);
    const double weights = ((double)m->num_params - (double)c->max_seq * c->d_model) * act;
    const double kv_row = 2.0 * c->n_layer * c->d_model * act; /* k and v of one position, all layers */
    double bytes = weights + (double)B * prompt_len * kv_row;   /* prefill */
    for (int step = 1; step < new_tokens; step++) {
        int ctx = prompt_len + step; /* positions attended, the new one included */
        bytes += weights + (double)B * ((double)ctx * kv_row + kv_row);
    }
    return (double)B * new_tokens / (bytes / bandwidth);
}

/* Times rollout_generate on B prompts; returns generated tokens/s (median run), or -1. */
static double run_ours(gpt_model *m, int B, const int *prompts, const bench_opts *o, long *gen_tokens,
                       double *time_ms) {
    rollout_engine r;
    rollout_output out;
    const int S = o->prompt_len + o->new_tokens;
    if (rollout_create(&r, m, B, S)) return -1;
    r.share_prefix = !o->no_share;
    r.use_panels = !o->no_panels;
    if (rollout_output_alloc(&out, B, S, m->cfg.d_model)) {
        rollout_destroy(&r);
        return -1;
    }
    int *lens = malloc(sizeof(int) * B);
    double *times = malloc(sizeof(double) * o->reps);
    if (!lens || !times) {
        fprintf(stderr, "bench_rollout: out of memory\n");
        exit(1);
    }
    for (int b = 0; b < B; b++) lens[b] = o->prompt_len;
    const struct exitrl_sampling sp = {1.0f, 0, 1.0f, 0, TOK_EOS, SAMPLING_SEED};
    char err[256];
    double result = -1;
    for (int i = 0; i < o->warmup + o->reps; i++) {
        double t0 = bench_now();
        if (rollout_generate(&r, prompts, lens, o->prompt_len, B, o->new_tokens, &sp, 0, &out, err, sizeof err)) {
            fprintf(stderr, "bench_rollout: rollout failed: %s\n", err);
            goto done;
        }
        if (i >= o->warmup) times[i - o->warmup] = bench_now() - t0;
    }
    *gen_tokens = 0;
    for (int b = 0; b < B; b++) *gen_tokens += out.gen_len[b];
    double t = bench_median(times, o->reps);
    *time_ms = t * 1e3;
    result = *gen_tokens / t;
done:
    free(lens);
    free(times);
    rollout_output_free(&out);
    rollout_destroy(&r);
    return result;
}

typedef struct {
    FILE *out;
    const bench_run *run;
    const char *backend, *config;
    const bench_opts *o;
    size_t params;
    int B, panels; /* panels: the backend offers the panel layout (ops.h) */
    double load, value, time_ms;
    long gen_tokens;
} record;

/* One JSONL object: the measurement, and the peer when peer != NULL. */
static void write_record(const record *r, const char *peer, double peer_value, const char *extra) {
    FILE *f = r->out;
    bench_json_head(f, "rollout", r->run, r->backend, NULL, r->config);
    fprintf(f, ",\"params\":%zu,\"batch\":%d,\"prompt_len\":%d,\"new_tokens\":%d,\"gen_tokens\":%ld,"
            "\"group\":%d,\"share_prefix\":%d,\"panels\":%d,\"temperature\":1,\"reps\":%d,\"threads\":%d,\"loadavg_1m\":%.2f,"
            "\"time_ms\":%.3f,\"value\":%.2f,\"unit\":\"tokens/s\"",
            r->params, r->B, r->o->prompt_len, r->o->new_tokens, r->gen_tokens, r->o->group, !r->o->no_share,
            !r->o->no_panels && r->panels, r->o->reps, r->o->threads, r->load, r->time_ms, r->value);
    if (peer) fprintf(f, ",\"peer\":\"%s\",\"peer_value\":%.2f,\"ratio\":%.4f%s", peer, peer_value,
                      r->value / peer_value, extra ? extra : "");
    fprintf(f, "}\n");
    fflush(f);
}

/* BOS then pseudo-random bytes: B prompts of prompt_len ids, the same on every run; each run of
 * `group` consecutive prompts is one prompt repeated. */
static int *make_prompts(int B, int prompt_len, int group) {
    int *p = malloc(sizeof(int) * (size_t)B * prompt_len);
    if (!p) {
        fprintf(stderr, "bench_rollout: out of memory for %d prompts\n", B);
        exit(1);
    }
    unsigned long long s = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < (size_t)B * prompt_len; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = i % prompt_len == 0 ? TOK_BOS : (int)((s >> 33) & 0xFF);
    }
    for (int b = 0; b < B; b++)
        if (b % group)
            memcpy(p + (size_t)b * prompt_len, p + (size_t)(b - b % group) * prompt_len, sizeof(int) * prompt_len);
    return p;
}

/* Checks that every preset in the list exists and holds prompt + new tokens. Returns 0 or 2. */
static int check_configs(const bench_opts *o) {
    char list[256];
    snprintf(list, sizeof list, "%s", o->configs);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        gpt_config c;
        if (gpt_config_preset(name, &c) != 0) return 2;
        if (o->prompt_len + o->new_tokens > c.max_seq) {
            fprintf(stderr, "bench_rollout: --prompt-len %d + --new-tokens %d exceeds %s's max_seq %d\n",
                    o->prompt_len, o->new_tokens, name, c.max_seq);
            return 2;
        }
    }
    return 0;
}

/* All measurements of one model config (checked by check_configs); returns 0 or 1 (a failure). */
static int bench_config(exitrl_backend *be, const char *name, const bench_opts *o, const char *python,
                        const peer_files *files, record *rec, double bandwidth) {
    gpt_config c;
    gpt_config_preset(name, &c);
    gpt_model m;
    if (gpt_create(&m, be, &c, 1, 2) != 0) return 1; /* the engine has its own activations */
    gpt_init_random(&m, WEIGHT_SEED);
    const int gpu = !strcmp(be->name, "cuda"), with_hf = python && (gpu || o->hf);
    int rc = 0;
    if (python && (bench_write_weights(&m, files->weights) || (with_hf && export_hf(&m, files)))) {
        gpt_destroy(&m);
        return 1;
    }
    rec->config = name;
    rec->params = m.num_params;
    for (int k = 0; k < o->n_batches; k++) {
        const int B = o->batches[k];
        int *prompts = make_prompts(B, o->prompt_len, o->group);
        rec->B = B;
        rec->load = bench_load_average();
        double ours = run_ours(&m, B, prompts, o, &rec->gen_tokens, &rec->time_ms);
        if (ours < 0) {
            free(prompts);
            rc = 1;
            continue;
        }
        rec->value = ours;
        peer_result peers[4];
        int n_peers = 0;
        if (python && !bench_write_file(files->prompts, prompts, sizeof(int) * (size_t)B * o->prompt_len)) {
            n_peers = run_peers(python, &c, B, o, files, be, with_hf, peers, 4);
            if (n_peers < 0) {
                n_peers = 0;
                rc = 1;
            }
        }
        free(prompts);
        printf("%-10s %5d %10.1f %9.1f", name, B, ours, rec->time_ms);
        for (int i = 0; i < n_peers; i++) {
            char extra[64];
            snprintf(extra, sizeof extra, ",\"peer_gen_tokens\":%ld", peers[i].gen_tokens);
            write_record(rec, peers[i].name, peers[i].tokens_per_s, extra);
            printf("   %s %.1f (x%.3f)", peers[i].name, peers[i].tokens_per_s, ours / peers[i].tokens_per_s);
        }
        if (bandwidth > 0) {
            double roof = roofline_tokens_per_s(&m, B, o->prompt_len, o->new_tokens, bandwidth);
            char extra[64];
            snprintf(extra, sizeof extra, ",\"bandwidth_gbs\":%.1f", bandwidth * 1e-9);
            write_record(rec, "roofline", roof, extra);
            printf("   roofline %.1f (x%.3f)", roof, ours / roof);
        }
        if (!n_peers && bandwidth <= 0) write_record(rec, NULL, 0, NULL);
        printf("\n");
        fflush(stdout);
    }
    gpt_destroy(&m);
    return rc;
}

int main(int argc, char **argv) {
    exitrl_cpu_blas_choose_core(argv); /* before timing anything (see ops.h) */
    bench_program = "bench_rollout";
    bench_opts o;
    parse_args(argc, argv, &o);
    bench_run run;
    exitrl_backend *be = bench_open(o.device, o.threads, argv, &run);
    if (!be) return 1;
    const int gpu = !strcmp(be->name, "cuda");
    apply_defaults(&o, gpu);
    if (strlen(o.configs) >= 256 || check_configs(&o)) {
        if (strlen(o.configs) >= 256) fprintf(stderr, "bench_rollout: --configs list is too long\n");
        be->destroy(be);
        return 2;
    }

    char out_path[4096];
    FILE *out = bench_open_results(o.out, o.quick, "rollout", gpu, out_path, sizeof out_path);
    if (!out) {
        be->destroy(be);
        return 1;
    }
    const char *python = o.peer ? bench_find_python(o.python) : NULL;
    if (python) bench_peer_blas(python, &run);
    peer_files files = {.dir = ""};
    if (python && bench_temp_dir(files.dir, sizeof files.dir, "bench_rollout")) python = NULL;
    snprintf(files.weights, sizeof files.weights, "%s/weights.f32", files.dir);
    snprintf(files.prompts, sizeof files.prompts, "%s/prompts.i32", files.dir);
    snprintf(files.ckpt, sizeof files.ckpt, "%s/model.ckpt", files.dir);
    snprintf(files.hf, sizeof files.hf, "%s/hf", files.dir);
    const double bandwidth = bench_peak_bandwidth(be);

    const double load = bench_load_average();
    printf("rollout on %s (%s backend, %s activations), %d threads, prompt %d + up to %d new tokens, "
           "%d sequences per prompt (shared prefill %s), median of %d runs after %d warmup, load average %.2f\n",
           run.device, be->name, be->act_dtype == EXITRL_BF16 ? "bf16" : "fp32", o.threads, o.prompt_len,
           o.new_tokens, o.group, o.no_share ? "off" : "on", o.reps, o.warmup, load);
    bench_warn_load(load, "low");
    printf("%-10s %5s %10s %9s   peers: tokens/s (ours / peer)\n", "config", "batch", "tok/s", "ms");
    record rec = {.out = out, .run = &run, .backend = be->name, .o = &o, .panels = be->panel_weight != NULL};
    int rc = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", o.configs);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (bench_config(be, name, &o, python, &files, &rec, bandwidth)) rc = 1;
    }
    fclose(out);
    if (python) remove_files(&files);
    be->destroy(be);
    if (out_path[0]) printf("appended to %s\n", out_path);
    else printf("quick run: nothing appended (give --out to keep the results)\n");
    return rc;
}
