/* The training lifecycle shared by exitrl pretrain and exitrl train (contract in run_loop.h). */
#include "run/run_loop.h"

#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "model/model_io.h"
#include "run/interrupt.h"
#include "run/run_log.h"

int run_open(const exitrl_config *cfg, char *dir, size_t dir_len, FILE **metrics) {
    int failed = 0;
    *metrics = NULL;
    if (dist_is_root()) {
        failed = run_dir_create(cfg->out_dir, cfg->name, dir, dir_len) != 0;
        if (!failed) {
            config_save_in_run(cfg, dir);
            *metrics = metrics_open(dir);
            failed = *metrics == NULL;
        }
    } else { /* the other ranks name the same directory and write nothing there */
        snprintf(dir, dir_len, "%s/%s", cfg->out_dir, cfg->name);
    }
    return dist_or(failed, "run directory") ? -1 : 0;
}

/* What the ranks agree on after each step (dist_or): rank 0 alone writes, every rank may be
 * interrupted, and all stop together. */
enum { STOP_LOG_FAILED = 1, STOP_INTERRUPTED = 2, STOP_SAVE_FAILED = 4 };

int run_loop(const run_loop_hooks *h, const char *dir) {
    interrupt_install();
    const int root = dist_is_root();
    progress_line prog;
    progress_init(&prog, root ? h->progress : 0);
    char label[64];
    snprintf(label, sizeof label, "%s %s", h->command, h->unit);
    int exit_code = 0;
    while (*h->done < h->total) {
        char text[200] = "";
        if ((exit_code = h->step(h->ctx, text, sizeof text))) break;
        const int64_t done = *h->done;
        const int last = done == h->total;
        progress_update(&prog, label, done, h->total, text);
        int log_failed = h->metrics && metrics_check(h->metrics, dir);
        if (root && !log_failed && h->evaluate &&
            ((h->eval_every && done % h->eval_every == 0) || (last && h->eval_at_end))) {
            progress_finish(&prog);
            h->evaluate(h->ctx);
            log_failed = h->metrics && metrics_check(h->metrics, dir);
        }
        int stop = dist_or((log_failed ? STOP_LOG_FAILED : 0) | (interrupt_requested() ? STOP_INTERRUPTED : 0),
                           "stop flags");
        if ((h->ckpt_every && done % h->ckpt_every == 0) || last || stop) {
            int save_failed = root && h->save(h->ctx, dir);
            if (dist_or(save_failed ? STOP_SAVE_FAILED : 0, "checkpoint written")) {
                exit_code = 1;
                break;
            }
        }
        if (stop & STOP_LOG_FAILED) {
            if (root)
                fprintf(stderr, "exitrl: stopped at %s %lld because metrics.jsonl cannot be written; checkpoint "
                                "saved in %s/checkpoint.bin\n", h->unit, (long long)done, dir);
            exit_code = 1;
            break;
        }
        if (stop & STOP_INTERRUPTED) {
            progress_finish(&prog);
            if (root)
                fprintf(stderr, "exitrl: interrupted at %s %lld; checkpoint saved in %s/checkpoint.bin "
                                "(continue with --resume %s/checkpoint.bin)\n",
                        h->unit, (long long)done, dir, dir);
            exit_code = 130;
            break;
        }
    }
    progress_finish(&prog);
    return exit_code;
}

int run_resume_config(exitrl_config *cfg, ckpt_reader *r, const gpt_config *mc) {
    enum { TEXT_MAX_BYTES = 1 << 20 };
    int64_t n = ckpt_section_size(r, "run_config");
    if (n < 0 || n > TEXT_MAX_BYTES) {
        fprintf(stderr, "exitrl: %s: section 'run_config' %s; --resume takes the run's configuration from it\n",
                r->path, n < 0 ? "is missing" : "is larger than 1 MiB");
        return 1;
    }
    char *text = malloc((size_t)n + 1), err[512], where[600];
    if (!text) {
        fprintf(stderr, "exitrl: out of memory reading %s\n", r->path);
        return 1;
    }
    exitrl_config saved;
    config_defaults(&saved);
    snprintf(where, sizeof where, "%s: section 'run_config'", r->path);
    int rc = 0;
    if (ckpt_read(r, "run_config", text, (uint64_t)n, err, sizeof err)) {
        fprintf(stderr, "exitrl: %s\n", err);
        rc = 1;
    } else if (config_load_text(&saved, text, (size_t)n, where)) {
        rc = 1; /* the message named the key and the line */
    }
    free(text);
    if (rc) return rc;
    const int recorded[4] = {saved.n_layer, saved.n_head, saved.d_model, saved.max_seq};
    const int actual[4] = {mc->n_layer, mc->n_head, mc->d_model, mc->max_seq};
    static const char *const names[4] = {"n_layer", "n_head", "d_model", "max_seq"};
    for (int i = 0; i < 4; i++)
        if (recorded[i] && recorded[i] != actual[i]) {
            fprintf(stderr, "exitrl: %s: key '%s' = %d, but section 'model_config' has %s = %d\n", where, names[i],
                    recorded[i], names[i], actual[i]);
            return 1;
        }
    return config_resume(cfg, &saved, r->path);
}

void run_record_model(exitrl_config *cfg, const gpt_config *mc) {
    cfg->n_layer = mc->n_layer;
    cfg->n_head = mc->n_head;
    cfg->d_model = mc->d_model;
    cfg->max_seq = mc->max_seq;
}

int run_save_checkpoint(const char *dir, gpt_model *m, const exitrl_config *cfg, ckpt_section state,
                        const ckpt_section *more, int n_more) {
    char path[700], err[512];
    ckpt_section sections[CKPT_MAX_SECTIONS];
    if (n_more < 0 || n_more + 2 > CKPT_MAX_SECTIONS) {
        fprintf(stderr, "exitrl: internal error: %d checkpoint sections\n", n_more + 2);
        return -1;
    }
    size_t text_len = 0;
    char *text = config_to_text(cfg, &text_len);
    if (!text) {
        fprintf(stderr, "exitrl: out of memory writing a checkpoint\n");
        return -1;
    }
    sections[0] = state;
    sections[1] = (ckpt_section){"run_config", text, text_len};
    for (int i = 0; i < n_more; i++) sections[2 + i] = more[i];
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    int rc = model_save(path, m, sections, n_more + 2, err, sizeof err);
    if (rc) fprintf(stderr, "exitrl: checkpoint not saved: %s (%s, if there, is unchanged)\n", err, path);
    free(text);
    return rc;
}
