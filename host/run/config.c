#define _POSIX_C_SOURCE 200809L
#include "run/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* K_ENUM: text restricted to `choices` (names resolved elsewhere: device, model preset, task).
 * K_CHOICE: an int field holding the index of the value in `choices` (the enums in config.h). */
typedef enum { K_INT, K_INT64, K_FLOAT, K_STR, K_ENUM, K_CHOICE, K_GROUP } key_type;

typedef struct {
    const char *key;
    key_type type;
    size_t offset, size;   /* field in exitrl_config; size for strings */
    double min, max;       /* numeric range, inclusive */
    const char *def;       /* default, as text */
    const char *choices;   /* K_ENUM, K_CHOICE: allowed values separated by '|' */
    const char *help;
} key_spec;

#define F(field) offsetof(exitrl_config, field), sizeof(((exitrl_config *)0)->field)
/* A heading: the keys after it, up to the next heading, belong to the group (a CONFIG_GROUP_* bit). */
#define GROUP(bit, title) {NULL, K_GROUP, 0, 0, (bit), (bit), NULL, NULL, title}

static const key_spec keys[] = {
    GROUP(CONFIG_GROUP_RUN, "run"),
    {"name", K_STR, F(name), 0, 0, "run", NULL, "run name; outputs go to <out_dir>/<name>/"},
    {"out_dir", K_STR, F(out_dir), 0, 0, "runs", NULL, "directory for runs"},
    {"device", K_ENUM, F(device), 0, 0, "auto", "auto|cpu|cuda", "compute backend"},
    {"fp32", K_INT, F(fp32), 0, 1, "0", NULL, "CUDA: fp32 activations instead of bf16"},
    {"seed", K_INT64, F(seed), 0, 9.2e18, "1337", NULL, "random seed"},
    {"threads", K_INT, F(threads), 0, 1024, "0", NULL, "CPU threads (0 = OpenMP default)"},
    GROUP(CONFIG_GROUP_MODEL, "model"),
    {"model", K_ENUM, F(model), 0, 0, "tiny", "tiny|small|gpt2-124m", "model size preset"},
    {"n_layer", K_INT, F(n_layer), 0, 256, "0", NULL, "layers (0 = preset)"},
    {"n_head", K_INT, F(n_head), 0, 256, "0", NULL, "attention heads (0 = preset)"},
    {"d_model", K_INT, F(d_model), 0, 16384, "0", NULL, "channels (0 = preset)"},
    {"max_seq", K_INT, F(max_seq), 0, 65536, "0", NULL, "context length (0 = preset)"},
    GROUP(CONFIG_GROUP_DATA, "data, tasks and checkpoints"),
    {"data", K_STR, F(data), 0, 0, "", NULL, "text file for next-token pretraining"},
    {"task", K_ENUM, F(task), 0, 0, "none", "none|arith|countdown|knapsack|ledger",
     "task domain (warm start, RL and evaluation)"},
    {"task_knobs", K_STR, F(task_knobs), 0, 0, "", NULL,
     "task difficulty knobs, e.g. 'ops=3,max=20' (empty = the domain's defaults)"},
    {"demo_p_improve", K_FLOAT, F(demo_p_improve), 0, 1, "0.25", NULL,
     "warm start: share of improve-format demonstrations"},
    {"demo_p_diverge", K_FLOAT, F(demo_p_diverge), 0, 1, "0.15", NULL,
     "warm start: share of diverge-format demonstrations"},
    {"demo_p_feedback", K_FLOAT, F(demo_p_feedback), 0, 1, "0.5", NULL,
     "warm start: chance an iteration demonstration shows the verifier's feedback"},
    {"teacher_p_correct", K_FLOAT, F(teacher_p_correct), -1, 1, "-1", NULL,
     "warm start: teacher accuracy (-1 = the domain's difficulty-dependent default)"},
    {"demo_targets", K_CHOICE, F(demo_targets), 0, 0, "improve", "fresh|improve",
     "warm start: improve demonstrations target a fresh teacher answer (the format only) or keep a "
     "right attempt and improve a wrong one"},
    {"demo_p_shown_correct", K_FLOAT, F(demo_p_shown_correct), -1, 1, "0.25", NULL,
     "warm start: accuracy of the attempt an iteration demonstration shows (-1 = the teacher's)"},
    {"max_new_tokens", K_INT, F(max_new_tokens), 1, 65536, "48", NULL, "longest generated answer"},
    {"init", K_STR, F(init), 0, 0, "", NULL, "checkpoint to take the weights from"},
    {"resume", K_STR, F(resume), 0, 0, "", NULL, "checkpoint to resume exactly"},
    GROUP(CONFIG_GROUP_OPTIM, "optimisation"),
    {"steps", K_INT, F(steps), 1, 1e9, "1000", NULL, "optimizer steps"},
    {"batch_size", K_INT, F(batch_size), 1, 65536, "16", NULL, "sequences per step"},
    {"seq_len", K_INT, F(seq_len), 2, 65536, "128", NULL, "tokens per sequence"},
    {"lr", K_FLOAT, F(lr), 0, 1, "1e-3", NULL, "peak learning rate"},
    {"min_lr_frac", K_FLOAT, F(min_lr_frac), 0, 1, "0.1", NULL,
     "final learning rate of the cosine schedule, as a fraction of lr"},
    {"warmup_steps", K_INT, F(warmup_steps), 0, 1e9, "50", NULL, "linear warmup steps"},
    {"weight_decay", K_FLOAT, F(weight_decay), 0, 10, "0.1", NULL, "AdamW decay (matrices only)"},
    {"beta1", K_FLOAT, F(beta1), 0, 0.999999, "0.9", NULL, "AdamW beta1"},
    {"beta2", K_FLOAT, F(beta2), 0, 0.999999, "0.95", NULL, "AdamW beta2"},
    {"adam_eps", K_FLOAT, F(adam_eps), 1e-12, 1, "1e-8", NULL, "AdamW epsilon"},
    {"grad_clip", K_FLOAT, F(grad_clip), 0, 1e6, "1.0", NULL, "global gradient norm clip (0 = off)"},
    GROUP(CONFIG_GROUP_LOG, "logging, evaluation and checkpoints"),
    {"log_every", K_INT, F(log_every), 1, 1e9, "10", NULL, "steps between metrics lines"},
    {"eval_every", K_INT, F(eval_every), 0, 1e9, "0", NULL, "steps between evaluations (0 = end only)"},
    {"ckpt_every", K_INT, F(ckpt_every), 0, 1e9, "500", NULL, "steps between checkpoints (0 = end only)"},
    {"eval_instances", K_INT, F(eval_instances), 1, 1e7, "256", NULL, "held-out instances per evaluation"},
    GROUP(CONFIG_GROUP_RL, "RL and ExIt (exitrl train)"),
    {"method", K_CHOICE, F(method), 0, 0, "exit", "grpo|curriculum|improve|diverge|exit",
     "the paper's method ladder: base GRPO, +learnability curriculum, +self-improve, +self-diverge, "
     "+diversity bonus (full ExIt)"},
    {"iterations", K_INT, F(iterations), 1, 1e9, "100", NULL, "RL iterations"},
    {"prompts", K_INT, F(prompts), 1, 1e6, "128", NULL, "task instances per iteration (P)"},
    {"group_size", K_INT, F(group_size), 1, 1024, "8", NULL, "rollouts per task instance (G)"},
    {"buffer_capacity", K_INT, F(buffer_capacity), 1, 1e7, "512", NULL, "task buffer size (N)"},
    {"buffer_min", K_INT, F(buffer_min), 0, 1e7, "128", NULL, "buffer size before replay starts (B_min)"},
    {"p_replay", K_FLOAT, F(p_replay), 0, 1, "0.5", NULL, "chance a prompt slot replays a buffer entry (p)"},
    {"p_diverge", K_FLOAT, F(p_diverge), 0, 1, "0.2", NULL, "chance an iteration step diverges instead of improving"},
    {"kappa", K_FLOAT, F(kappa), 0, 1e4, "1", NULL, "buffer sampling P(i) ~ exp(kappa * S_i)"},
    {"insert", K_CHOICE, F(insert), 0, 0, "all", "all|best|random|topk", "which expansions enter the buffer"},
    {"insert_k", K_INT, F(insert_k), 1, 1024, "2", NULL, "expansions per group for insert = random | topk"},
    {"iter_reward", K_CHOICE, F(iter_reward), 0, 0, "absolute", "absolute|improvement|delta",
     "reward of an iteration step: new quality, max(0,(r-r0)/(1-r0)), or max(0, d/d_max)"},
    {"scale_rewards", K_CHOICE, F(scale_rewards), 0, 0, "group", "group|batch|none", "advantage normaliser"},
    {"adv_eps", K_FLOAT, F(adv_eps), 1e-8, 1, "1e-4", NULL, "added to the reward std (> 0: an all-equal group gets 0, not 0/0)"},
    {"loss_agg", K_CHOICE, F(loss_agg), 0, 0, "grpo", "grpo|dapo|dr_grpo", "token aggregation of the loss"},
    {"clip_eps_low", K_FLOAT, F(clip_eps_low), 0, 1, "0.2", NULL, "ratio clip below 1"},
    {"clip_eps_high", K_FLOAT, F(clip_eps_high), 0, 10, "0.2", NULL, "ratio clip above 1"},
    {"kl_beta", K_FLOAT, F(kl_beta), 0, 10, "0.001", NULL, "k3 KL coefficient to the reference policy"},
    {"ref_every", K_INT, F(ref_every), 1, 1e9, "100", NULL, "iterations between reference updates (M)"},
    {"ref_alpha", K_FLOAT, F(ref_alpha), 0, 1, "1", NULL, "reference update theta_ref <- a*theta + (1-a)*theta_ref"},
    {"epochs", K_INT, F(epochs), 1, 100, "1", NULL, "passes over each iteration's rollouts"},
    {"minibatches", K_INT, F(minibatches), 1, 4096, "1", NULL, "optimizer steps per pass"},
    {"temperature", K_FLOAT, F(temperature), 1e-3, 100, "1", NULL, "sampling temperature of rollouts"},
    {"top_p", K_FLOAT, F(top_p), 1e-6, 1, "1", NULL, "nucleus sampling (1 = off)"},
    {"top_k", K_INT, F(top_k), 0, 1e6, "0", NULL, "top-k sampling (0 = off)"},
    {"share_prefix", K_INT, F(share_prefix), 0, 1, "1", NULL,
     "rollouts of one prompt share its prefill, and the GRPO update processes each prompt once for its "
     "completions (0 = every sequence alone; same results within float rounding)"},
    {"diversity_embed", K_CHOICE, F(diversity_embed), 0, 0, "hidden", "hidden|ngram",
     "embedding for the diversity bonus: mean final hidden state or hashed n-grams"},
    {"feedback", K_INT, F(feedback), 0, 1, "0", NULL, "iteration prompts show the verifier's feedback"},
    {"staleness", K_FLOAT, F(staleness), 0, 1, "0", NULL, "PLR staleness mixing in buffer sampling (0 = off)"},
    {"rank_beta", K_FLOAT, F(rank_beta), 0, 100, "0", NULL, "PLR rank prioritisation temperature (0 = softmax)"},
    {"max_skips", K_INT, F(max_skips), 1, 1e6, "5", NULL,
     "consecutive iterations whose update was skipped (non-finite loss, KL, advantage or gradient norm) "
     "before train stops"},
    GROUP(CONFIG_GROUP_EVAL, "multi-step evaluation (exitrl eval)"),
    {"eval_steps", K_INT, F(eval_steps), 0, 1024, "16", NULL, "self-improvement steps K in evaluation"},
    {"eval_samples", K_INT, F(eval_samples), 1, 1024, "4", NULL, "samples per held-out instance (avg@n)"},
    {"progress", K_INT, F(progress), -1, 1, "-1", NULL, "live progress line (1 on, 0 off, -1 if a terminal)"},
};
#define NUM_KEYS (sizeof keys / sizeof keys[0])
_Static_assert(NUM_KEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

static const key_spec *find_key(const char *key) {
    for (size_t i = 0; i < NUM_KEYS; i++)
        if (keys[i].key && strcmp(keys[i].key, key) == 0) return &keys[i];
    return NULL;
}

/* Index of v among the '|'-separated choices, or -1. */
static int choice_index(const char *choices, const char *v) {
    size_t n = strlen(v);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return i;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

/* The index-th of the '|'-separated choices, into buf; "?" when out of range. */
static const char *choice_name(const char *choices, int index, char *buf, size_t cap) {
    const char *p = choices;
    for (int i = 0; i < index && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    size_t len = p ? strcspn(p, "|") : 0;
    if (index < 0 || !p || !len || len >= cap) return "?";
    memcpy(buf, p, len);
    buf[len] = 0;
    return buf;
}

const char *config_choice_name(const char *key, int value) {
    enum { MAX_CHOICES = 8 };
    static char names[NUM_KEYS][MAX_CHOICES][32]; /* one slot per (key, value): results stay valid */
    const key_spec *k = find_key(key);
    if (!k || k->type != K_CHOICE || value < 0 || value >= MAX_CHOICES) return "?";
    return choice_name(k->choices, value, names[k - keys][value], sizeof names[0][0]);
}

static void print_range(FILE *f, const key_spec *k) {
    if (k->type == K_ENUM || k->type == K_CHOICE)
        fprintf(f, "one of %s", k->choices);
    else if (k->type == K_FLOAT)
        fprintf(f, "a number in [%g, %g]", k->min, k->max);
    else if (k->type == K_STR)
        fprintf(f, "text of at most %zu bytes", k->size - 1);
    else
        fprintf(f, "an integer in [%.0f, %.0f]", k->min, k->max);
}

static int set_value(exitrl_config *c, const key_spec *k, const char *value, const char *origin) {
    const char *key = k->key;
    char *field = (char *)c + k->offset;
    if (k->type == K_CHOICE) {
        int index = choice_index(k->choices, value);
        if (index < 0) {
            fprintf(stderr, "exitrl: %s: config key '%s' = '%s' is invalid: expected ", origin, key, value);
            print_range(stderr, k);
            fputc('\n', stderr);
            return 2;
        }
        *(int *)field = index;
        return 0;
    }
    if (k->type == K_STR || k->type == K_ENUM) {
        if (strlen(value) >= k->size || (k->type == K_ENUM && choice_index(k->choices, value) < 0)) {
            fprintf(stderr, "exitrl: %s: config key '%s' = '%s' is invalid: expected ", origin, key, value);
            print_range(stderr, k);
            fputc('\n', stderr);
            return 2;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double d = strtod(value, &end);
    int malformed = end == value || *end != 0 || errno == ERANGE || !isfinite(d);
    if (!malformed && k->type != K_FLOAT && d != floor(d)) malformed = 1;
    if (malformed) {
        fprintf(stderr, "exitrl: %s: config key '%s': '%s' is not %s\n", origin, key, value,
                k->type == K_FLOAT ? "a number" : "an integer");
        return 2;
    }
    if (d < k->min || d > k->max) {
        fprintf(stderr, "exitrl: %s: config key '%s' = %s is out of range: expected ", origin, key, value);
        print_range(stderr, k);
        fputc('\n', stderr);
        return 2;
    }
    if (k->type == K_INT)
        *(int *)field = (int)d;
    else if (k->type == K_INT64)
        *(long long *)field = strtoll(value, NULL, 10);
    else
        *(double *)field = d;
    return 0;
}

int config_set(exitrl_config *c, const char *key, const char *value, const char *origin) {
    const key_spec *k = find_key(key);
    if (!k) {
        fprintf(stderr, "exitrl: %s: unknown config key '%s' (see --help for the keys)\n", origin, key);
        return 2;
    }
    int rc = set_value(c, k, value, origin);
    if (!rc) c->given[k - keys] = 1;
    return rc;
}

void config_defaults(exitrl_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NUM_KEYS; i++)
        if (keys[i].key && set_value(c, &keys[i], keys[i].def, "default")) abort(); /* a broken table is a bug */
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int config_load_text(exitrl_config *c, const char *text, size_t len, const char *where) {
    enum { LINE_MAX_BYTES = 1022 };
    char line[LINE_MAX_BYTES + 2], origin[CONFIG_STR_MAX + 64];
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        lineno++;
        snprintf(origin, sizeof origin, "%s:%d", where, lineno);
        const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        if (n > LINE_MAX_BYTES) {
            fprintf(stderr, "exitrl: %s: line longer than %d bytes\n", origin, LINE_MAX_BYTES);
            return 2;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char b = (unsigned char)start[i];
            if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7f) {
                fprintf(stderr, "exitrl: %s: control byte 0x%02x at column %zu (not a text config)\n", origin, b, i + 1);
                return 2;
            }
        }
        memcpy(line, start, n);
        line[n] = 0;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "exitrl: %s: expected 'key = value', got '%s'\n", origin, s);
            return 2;
        }
        *eq = 0;
        int rc = config_set(c, trim(s), trim(eq + 1), origin);
        if (rc) return rc;
    }
    return 0;
}

int config_load_file(exitrl_config *c, const char *path) {
    enum { FILE_MAX_BYTES = 1 << 20 };
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "exitrl: cannot open config file '%s': %s\n", path, strerror(errno));
        return 2;
    }
    char *text = malloc(FILE_MAX_BYTES + 1);
    size_t len = text ? fread(text, 1, FILE_MAX_BYTES + 1, f) : 0;
    int bad = !text || ferror(f), too_long = len > FILE_MAX_BYTES;
    fclose(f);
    int rc = 2;
    if (bad)
        fprintf(stderr, "exitrl: cannot read config file '%s'\n", path);
    else if (too_long)
        fprintf(stderr, "exitrl: config file '%s' is larger than %d bytes\n", path, FILE_MAX_BYTES);
    else
        rc = config_load_text(c, text, len, path);
    free(text);
    return rc;
}

int config_parse_args(exitrl_config *c, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            fprintf(stderr, "exitrl: unexpected argument '%s' (options are --key value)\n", a);
            return 2;
        }
        char key[128];
        const char *value;
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen >= sizeof key) {
            fprintf(stderr, "exitrl: option '%.40s...' is too long\n", a);
            return 2;
        }
        memcpy(key, a + 2, klen);
        key[klen] = 0;
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "exitrl: option '--%s' needs a value\n", key);
                return 2;
            }
            value = argv[++i];
        }
        char origin[160];
        snprintf(origin, sizeof origin, "--%s", key);
        int rc = strcmp(key, "config") == 0 ? config_load_file(c, value) : config_set(c, key, value, origin);
        if (rc) return rc;
    }
    return 0;
}

/* A key's value as config text. */
static void format_value(const key_spec *k, const exitrl_config *c, char *buf, size_t cap) {
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case K_INT: snprintf(buf, cap, "%d", *(const int *)field); break;
    case K_INT64: snprintf(buf, cap, "%lld", *(const long long *)field); break;
    case K_FLOAT: snprintf(buf, cap, "%.17g", *(const double *)field); break;
    case K_CHOICE: snprintf(buf, cap, "%s", config_choice_name(k->key, *(const int *)field)); break;
    default: snprintf(buf, cap, "%s", field); break;
    }
}

void config_write(const exitrl_config *c, FILE *f) {
    char value[CONFIG_STR_MAX + 32];
    for (size_t i = 0; i < NUM_KEYS; i++) {
        if (!keys[i].key) continue;
        format_value(&keys[i], c, value, sizeof value);
        fprintf(f, "%s = %s\n", keys[i].key, value);
    }
}

/* On --resume the run's configuration comes from the checkpoint. A key given on the command line
 * (or in a --config file) then: RESUME_SAME, must equal the checkpoint's value (the run's
 * definition: model, task, method, optimiser...); RESUME_OVERRIDE, replaces it (how long, where,
 * how often to log, on which device); RESUME_COMMAND, always comes from the command line, never
 * from the checkpoint. */
enum { RESUME_SAME, RESUME_OVERRIDE, RESUME_COMMAND };
static int resume_rule(const key_spec *k) {
    static const char *const override[] = {"name", "out_dir", "device", "fp32", "threads", "progress", "steps",
                                            "iterations", "log_every", "eval_every", "ckpt_every", "eval_instances",
                                            "eval_steps", "eval_samples", "max_skips", "share_prefix"};
    if (!strcmp(k->key, "init") || !strcmp(k->key, "resume")) return RESUME_COMMAND;
    for (size_t i = 0; i < sizeof override / sizeof override[0]; i++)
        if (!strcmp(k->key, override[i])) return RESUME_OVERRIDE;
    return RESUME_SAME;
}

int config_resume(exitrl_config *c, const exitrl_config *saved, const char *where) {
    exitrl_config out = *saved;
    for (size_t i = 0; i < NUM_KEYS; i++) {
        const key_spec *k = &keys[i];
        const int rule = k->key ? resume_rule(k) : RESUME_SAME;
        if (!k->key || (rule != RESUME_COMMAND && !c->given[i])) continue;
        char *dst = (char *)&out + k->offset;
        const char *src = (const char *)c + k->offset;
        if (rule != RESUME_SAME) {
            memcpy(dst, src, k->size);
            continue;
        }
        char mine[CONFIG_STR_MAX + 32], theirs[CONFIG_STR_MAX + 32];
        format_value(k, c, mine, sizeof mine);
        format_value(k, saved, theirs, sizeof theirs);
        if (strcmp(mine, theirs) == 0) continue;
        fprintf(stderr, "exitrl: config key '%s' = '%s' cannot change on --resume: the run in %s has '%s'. "
                        "Keys that may change:", k->key, mine, where, theirs);
        for (size_t j = 0; j < NUM_KEYS; j++)
            if (keys[j].key && resume_rule(&keys[j]) == RESUME_OVERRIDE) fprintf(stderr, " %s", keys[j].key);
        fputc('\n', stderr);
        return 2;
    }
    memcpy(out.given, c->given, sizeof out.given);
    *c = out;
    return 0;
}

void config_print_help(FILE *f, unsigned groups) {
    fprintf(f, "Config keys (in a file given with --config FILE as 'key = value' lines, or as --key value):\n");
    int shown = 0;
    for (size_t i = 0; i < NUM_KEYS; i++) {
        const key_spec *k = &keys[i];
        if (!k->key) {
            shown = (groups & (unsigned)k->min) != 0;
            if (shown) fprintf(f, "\n %s\n", k->help);
            continue;
        }
        if (!shown) continue;
        fprintf(f, "  %-17s %s (default %s; ", k->key, k->help, k->def[0] ? k->def : "empty");
        print_range(f, k);
        fprintf(f, ")\n");
    }
}

char *config_to_text(const exitrl_config *c, size_t *len) {
    char *text = NULL;
    FILE *mem = open_memstream(&text, len);
    if (!mem) return NULL;
    config_write(c, mem);
    if (fclose(mem)) {
        free(text);
        return NULL;
    }
    return text;
}

void config_save_in_run(const exitrl_config *c, const char *dir) {
    char path[700];
    snprintf(path, sizeof path, "%s/config.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return; /* a convenience copy: the checkpoint holds the config too */
    config_write(c, f);
    fclose(f);
}

int config_wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}
