/* The lifecycle every training command shares (exitrl pretrain and exitrl train): the run
 * directory, the step loop with its progress line, the evaluation and checkpoint cadence, a clean
 * stop on SIGINT / SIGTERM (checkpoint, exit code 130), and the checkpoint itself.
 *
 * A command owns its state and passes it as `ctx` to its hooks; the loop owns only the cadence.
 * After each step (counter advanced by the step hook) it runs, in this order:
 *   progress line -> evaluate (every eval_every steps; at the last step when eval_at_end) ->
 *   save (every ckpt_every steps, at the last step, and when interrupted) -> stop when interrupted.
 * Checkpoints are written atomically (model/checkpoint.h), so a kill at any moment leaves either
 * the previous checkpoint or the new one. A failed write (disk full, file-size limit, a bad
 * directory) is an error naming the path and the reason, and leaves the previous checkpoint as it
 * was; a metrics line that cannot be written stops the run too (after a checkpoint attempt).
 *
 * Across MPI ranks (dist/dist.h) every rank runs the loop in lockstep: only rank 0 prints
 * progress, evaluates and saves; after each step the ranks agree (one dist_or) on stopping, so an
 * interrupt, a failed metrics line or a failed checkpoint on any rank stops all of them at the same
 * step. The step hook does its own collectives. */
#ifndef EXITRL_RUN_LOOP_H
#define EXITRL_RUN_LOOP_H
#include <stdint.h>
#include <stdio.h>

#include "model/checkpoint.h"
#include "model/model.h"
#include "run/config.h"

typedef struct {
    const char *command;   /* "pretrain" / "train": messages say "exitrl <command>: ..." */
    const char *unit;      /* "step" / "iteration" */
    int64_t *done;         /* units done so far; the step hook advances it by one */
    int64_t total;         /* stop when *done reaches it */
    int eval_every;        /* 0 = no periodic evaluation */
    int ckpt_every;        /* 0 = checkpoint at the end (and on interrupt) only */
    int eval_at_end;       /* also evaluate after the last step */
    int progress;          /* progress_init's mode (config key progress) */
    void *ctx;
    /* One unit of work, including its metrics line; writes a short status into text (for the
     * progress line). Returns 0, or the exit code (1) after printing why. Required. */
    int (*step)(void *ctx, char *text, size_t text_len);
    /* Held-out evaluation at *done. Optional (NULL: never). */
    void (*evaluate)(void *ctx);
    /* Writes <dir>/checkpoint.bin. Returns 0, or -1 after printing why. Required. */
    int (*save)(void *ctx, const char *dir);
    FILE *metrics;         /* the run's metrics.jsonl, checked after each step and evaluation */
} run_loop_hooks;

/* Creates <out_dir>/<name>/, writes config.txt there and opens metrics.jsonl for appending (rank 0;
 * the other ranks get the path and *metrics = NULL, which the jsonl writers skip). Returns 0, or
 * -1 on every rank after rank 0's message (nothing to close then). */
int run_open(const exitrl_config *cfg, char *dir, size_t dir_len, FILE **metrics);

/* Runs steps until *done == total, an error or an interrupt. Returns the exit code: 0 done,
 * 1 runtime error (a failed step or checkpoint), 130 interrupted after saving. */
int run_loop(const run_loop_hooks *h, const char *dir);

/* --resume: the run's configuration comes from the checkpoint's run_config section, parsed with
 * the checks of a config file (config_load_text), and the model keys it records (n_layer, n_head,
 * d_model, max_seq; 0 = not recorded) must match mc, the checkpoint's model_config. Then the
 * command line's keys apply as config_resume says. Returns 0; 1 after a message naming the file,
 * the section and the key (a corrupt or inconsistent checkpoint); 2 after config_resume's message
 * (a key the command line may not change). */
int run_resume_config(exitrl_config *cfg, ckpt_reader *r, const gpt_config *mc);
/* Records the model's actual shape in cfg's n_layer, n_head, d_model and max_seq, so that the
 * configuration a checkpoint stores describes its model_config (run_resume_config checks it). */
void run_record_model(exitrl_config *cfg, const gpt_config *mc);

/* Writes <dir>/checkpoint.bin: the model (model_io.h), then `state` (the command's resume state),
 * the run's configuration as text ("run_config"), then the n_more extra sections. Returns 0, or -1
 * after printing why. */
int run_save_checkpoint(const char *dir, gpt_model *m, const exitrl_config *cfg, ckpt_section state,
                        const ckpt_section *more, int n_more);
#endif
