/* Run configuration: `key = value` files plus `--key value` overrides, checked against one table of
 * keys (type, range, default, help). An unknown key, a malformed number or an out-of-range value is
 * an error that names the key and the allowed values. */
#ifndef EXITRL_CONFIG_H
#define EXITRL_CONFIG_H
#include <stddef.h>
#include <stdio.h>

#define CONFIG_STR_MAX 256
#define CONFIG_MAX_KEYS 96

/* Choice keys. Each is parsed once, by config.c's table, into one of these values; the names in
 * that table are listed in the same order (config_choice_name gives a value's name back). */
enum { METHOD_GRPO, METHOD_CURRICULUM, METHOD_IMPROVE, METHOD_DIVERGE, METHOD_EXIT };   /* method */
enum { ITER_REWARD_ABSOLUTE, ITER_REWARD_IMPROVEMENT, ITER_REWARD_DELTA };             /* iter_reward */
enum { GRPO_AGG_GRPO, GRPO_AGG_DAPO, GRPO_AGG_DR_GRPO };                                /* loss_agg */
enum { DIVERSITY_HIDDEN, DIVERSITY_NGRAM };                                            /* diversity_embed */
/* insert and scale_rewards take the values of ops.h's EXITRL_SELECT_* and EXITRL_SCALE_*. */

typedef struct {
    /* run */
    char name[CONFIG_STR_MAX];     /* run name: outputs go to <out_dir>/<name>/ */
    char out_dir[CONFIG_STR_MAX];
    char device[16];               /* auto | cpu | cuda */
    int fp32;                      /* CUDA: fp32 activations instead of bf16 */
    long long seed;
    int threads;                   /* CPU threads (0 = OpenMP's default) */
    /* model */
    char model[32];                /* tiny | small | gpt2-124m */
    int n_layer, n_head, d_model, max_seq; /* 0 = the preset's value */
    /* data */
    char data[CONFIG_STR_MAX];     /* text file for plain next-token pretraining */
    char task[32];                 /* none | arith | countdown | knapsack | ledger */
    char task_knobs[CONFIG_STR_MAX]; /* difficulty knobs, "name=value,..." ("" = defaults) */
    double demo_p_improve, demo_p_diverge, demo_p_feedback, teacher_p_correct;
    int demo_targets;              /* TASK_DEMO_* (tasks/task.h): fresh | improve */
    double demo_p_shown_correct;   /* accuracy of the attempt iteration demonstrations show */
    int max_new_tokens;            /* generation cap for answers */
    char init[CONFIG_STR_MAX];     /* checkpoint to start from (weights only) */
    char resume[CONFIG_STR_MAX];   /* checkpoint to resume exactly (weights, optimizer, RNG, step) */
    /* optimisation */
    int steps, batch_size, seq_len;
    double lr, min_lr_frac, weight_decay, beta1, beta2, adam_eps, grad_clip;
    int warmup_steps;
    /* logging and checkpoints */
    int log_every, eval_every, ckpt_every, eval_instances;
    int progress;                  /* live progress line: 1 on, 0 off, -1 when stderr is a terminal */
    /* RL / ExIt (exitrl train, docs/DESIGN.md §5) */
    int method;                    /* METHOD_*: grpo | curriculum | improve | diverge | exit */
    int iterations, prompts, group_size;
    int buffer_capacity, buffer_min;
    double p_replay, p_diverge, kappa;
    int insert;                    /* EXITRL_SELECT_*: all | best | random | topk */
    int insert_k;
    int iter_reward;               /* ITER_REWARD_*: absolute | improvement | delta */
    int scale_rewards;             /* EXITRL_SCALE_*: group | batch | none */
    double adv_eps;
    int loss_agg;                  /* GRPO_AGG_*: grpo | dapo | dr_grpo */
    double clip_eps_low, clip_eps_high, kl_beta, ref_alpha;
    int ref_every, epochs, minibatches;
    double temperature, top_p;
    int top_k;
    int diversity_embed;           /* DIVERSITY_*: hidden | ngram */
    int feedback;                  /* iteration prompts show the verifier's feedback */
    int share_prefix;              /* equal prompts share their prefill and their update rows */
    double staleness, rank_beta;   /* PLR-style extensions, 0 = off */
    int max_skips;                 /* consecutive skipped updates (non-finite values) before train stops */
    /* evaluation (exitrl eval, docs/DESIGN.md §7) */
    int eval_steps, eval_samples;
    /* given[i] = 1 when the i-th key of config.c's table was set by config_set (a --config file, a
     * --key value, a text); 0 while it holds its default. Only config_resume reads it. */
    unsigned char given[CONFIG_MAX_KEYS];
} exitrl_config;

/* Fills every key with its default. */
void config_defaults(exitrl_config *c);
/* Applies a `key = value` file ('#' starts a comment; at most 1 MiB). Returns 0, or 2 after printing
 * an error that names the file, the line and the key. */
int config_load_file(exitrl_config *c, const char *path);
/* The same for text[0..len) (any bytes; not NUL-terminated): lines of at most 1022 bytes, no
 * control bytes but tab and CR, every key checked by config_set. Messages name `where` and the line ("where:line"). A key
 * may appear more than once (the last wins) or not at all (it keeps its value). Returns 0 or 2. */
int config_load_text(exitrl_config *c, const char *text, size_t len, const char *where);
/* --resume: c holds the command line's config (defaults, --config files, --key values), saved the
 * configuration stored in the checkpoint `where`. On return c is saved, except: keys the command
 * line gave that may change on a resume (iterations, steps, log_every, eval_every, ckpt_every,
 * eval_instances, eval_steps, eval_samples, max_skips, share_prefix, out_dir, name, device, fp32, threads,
 * progress) take the command line's value; init and resume always come from the command line.
 * Any other key the command line gave must equal the saved value, else an error naming the key
 * and both values. Returns 0, or 2 after the message (c unchanged). */
int config_resume(exitrl_config *c, const exitrl_config *saved, const char *where);
/* Sets one key from text. `origin` names where it came from for messages ("--lr", "file:3").
 * Returns 0, or 2 after printing an error naming the key and its allowed range or values. */
int config_set(exitrl_config *c, const char *key, const char *value, const char *origin);
/* Parses argv: `--config FILE` (applied first, in order) and `--key value` / `--key=value`
 * overrides. Non-option arguments are an error. Returns 0 or 2. */
int config_parse_args(exitrl_config *c, int argc, char **argv);
/* The name of a choice key's value ("exit" for key "method", METHOD_EXIT), or "?" when the key is
 * not a choice key or the value is out of range. */
const char *config_choice_name(const char *key, int value);
/* Writes every key as `key = value` lines (round-trips through config_load_file). */
void config_write(const exitrl_config *c, FILE *f);
/* The config as `key = value` text (malloc'd, *len bytes), or NULL when out of memory. */
char *config_to_text(const exitrl_config *c, size_t *len);
/* Writes <dir>/config.txt, a readable copy of the run's config (best effort). */
void config_save_in_run(const exitrl_config *c, const char *dir);
/* 1 when the arguments ask for help (--help or -h anywhere). */
int config_wants_help(int argc, char **argv);
enum {
    CONFIG_GROUP_RUN = 1, CONFIG_GROUP_MODEL = 2, CONFIG_GROUP_DATA = 4, CONFIG_GROUP_OPTIM = 8,
    CONFIG_GROUP_LOG = 16, CONFIG_GROUP_RL = 32, CONFIG_GROUP_EVAL = 64
};
/* Prints the keys of the given CONFIG_GROUP_* groups with defaults, ranges and help. (Every key
 * is accepted by every command; the groups only keep --help to what a command uses.) */
void config_print_help(FILE *f, unsigned groups);
#endif
