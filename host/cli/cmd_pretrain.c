/* `exitrl pretrain`: supervised next-token training (plain text, or a task domain's demonstrations
 * for the warm start), with warmup + cosine learning rate, clipping, metrics, checkpoints and a
 * clean stop on SIGINT. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "run/config.h"
#include "run/interrupt.h"
#include "model/model_io.h"
#include "pretrain/source.h"
#include "model/rng.h"
#include "run/run_log.h"
#include "run/setup.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: exitrl pretrain [--config FILE] [--key value ...]\n"
            "\n"
            "Supervised next-token training of the policy, either on a text file (--data FILE) or on\n"
            "noisy-teacher demonstrations of a task domain (--task arith|countdown|knapsack), the warm\n"
            "start before RL. Writes <out_dir>/<name>/metrics.jsonl (one JSON object per logged step),\n"
            "config.txt and checkpoint.bin (every ckpt_every steps, at the end and on Ctrl-C).\n"
            "--resume CKPT continues a run exactly; --init CKPT starts from its weights.\n"
            "Exit codes: 0 done, 1 runtime error, 2 usage error, 130 interrupted (checkpoint saved).\n\n");
    config_print_help(f, CONFIG_GROUP_RUN | CONFIG_GROUP_MODEL | CONFIG_GROUP_DATA | CONFIG_GROUP_OPTIM | CONFIG_GROUP_LOG);
}

/* Linear warmup to lr, then cosine decay to min_lr_frac * lr at the last step. */
static double lr_at(const exitrl_config *c, int step) {
    if (step < c->warmup_steps) return c->lr * (step + 1) / c->warmup_steps;
    int decay_steps = c->steps - c->warmup_steps;
    double progress = decay_steps > 0 ? (double)(step - c->warmup_steps) / decay_steps : 1.0;
    double min_lr = c->lr * c->min_lr_frac;
    return min_lr + 0.5 * (c->lr - min_lr) * (1.0 + cos(3.14159265358979323846 * progress));
}

/* State beyond the model that an exact resume needs. */
typedef struct {
    int64_t step;
    rng_state data_rng;
} pretrain_state;

static int save(const char *dir, gpt_model *m, const pretrain_state *st, const exitrl_config *cfg) {
    char path[700], err[512];
    size_t text_len = 0;
    char *text = config_to_text(cfg, &text_len);
    if (!text) {
        fprintf(stderr, "exitrl: out of memory writing a checkpoint\n");
        return -1;
    }
    ckpt_section extra[] = {{"pretrain_state", st, sizeof *st}, {"run_config", text, text_len}};
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    int rc = model_save(path, m, extra, 2, err, sizeof err);
    if (rc) fprintf(stderr, "exitrl: %s\n", err);
    free(text);
    return rc;
}

int cmd_pretrain(int argc, char **argv) {
    if (config_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    exitrl_config cfg;
    config_defaults(&cfg);
    int rc = config_parse_args(&cfg, argc, argv);
    if (rc) return rc;
    if (!cfg.data[0] && !strcmp(cfg.task, "none")) {
        fprintf(stderr, "exitrl pretrain: give --data FILE or --task NAME (see --help)\n");
        return 2;
    }
    if (cfg.data[0] && strcmp(cfg.task, "none")) {
        fprintf(stderr, "exitrl pretrain: --data and --task exclude each other\n");
        return 2;
    }
    if (cfg.resume[0] && cfg.init[0]) {
        fprintf(stderr, "exitrl pretrain: --resume and --init exclude each other\n");
        return 2;
    }

    /* The model config comes from the checkpoint when there is one, else from the preset. */
    gpt_config mc;
    ckpt_reader ck = {0};
    char err[512];
    const char *ckpt_path = cfg.resume[0] ? cfg.resume : cfg.init;
    if (ckpt_path[0]) {
        if (ckpt_open(&ck, ckpt_path, err, sizeof err) || model_read_config(&ck, &mc, err, sizeof err)) {
            fprintf(stderr, "exitrl: %s\n", err);
            ckpt_close(&ck);
            return 1;
        }
    } else if ((rc = setup_model_config(&cfg, &mc))) {
        return rc;
    }
    if (cfg.seq_len > mc.max_seq) {
        fprintf(stderr, "exitrl: config key 'seq_len' = %d is out of range: the model's max_seq is %d\n",
                cfg.seq_len, mc.max_seq);
        ckpt_close(&ck);
        return 2;
    }

    pretrain_source src;
    if ((rc = pretrain_source_open(&src, &cfg))) {
        ckpt_close(&ck);
        if (src.close) src.close(&src);
        return rc;
    }
    exitrl_backend *be = setup_backend(&cfg);
    if (!be) {
        ckpt_close(&ck);
        src.close(&src);
        return 1;
    }
    const int B = cfg.batch_size, T = cfg.seq_len;
    gpt_model m;
    if (gpt_create(&m, be, &mc, B, T)) {
        ckpt_close(&ck);
        src.close(&src);
        be->destroy(be);
        return 1;
    }

    pretrain_state st = {0};
    rng_seed(&st.data_rng, (uint64_t)cfg.seed ^ 0xDA7A);
    if (ckpt_path[0]) {
        rc = model_load(&ck, &m, cfg.resume[0] != 0, err, sizeof err);
        if (!rc && cfg.resume[0]) rc = ckpt_read(&ck, "pretrain_state", &st, sizeof st, err, sizeof err);
        if (!rc && (st.step < 0 || st.step > cfg.steps)) {
            snprintf(err, sizeof err, "%s: step %lld is outside [0, steps = %d]", ckpt_path,
                     (long long)st.step, cfg.steps);
            rc = -1;
        }
        ckpt_close(&ck);
        if (rc) {
            fprintf(stderr, "exitrl: %s\n", err);
            goto fail;
        }
    } else {
        gpt_init_random(&m, (uint64_t)cfg.seed);
    }

    char dir[600];
    if (run_dir_create(cfg.out_dir, cfg.name, dir, sizeof dir)) goto fail;
    config_save_in_run(&cfg, dir);
    FILE *metrics = metrics_open(dir);
    if (!metrics) goto fail;

    fprintf(stderr, "exitrl pretrain: %s backend, %zu parameters (L=%d H=%d C=%d), batch %d x %d, %s, "
                    "steps %lld..%d -> %s\n",
            be->name, m.num_params, mc.n_layer, mc.n_head, mc.d_model, B, T, src.describe, (long long)st.step,
            cfg.steps, dir);

    int *tokens = malloc(sizeof(int) * B * T), *targets = malloc(sizeof(int) * B * T);
    if (!tokens || !targets) {
        fprintf(stderr, "exitrl: out of host memory for the batch\n");
        free(tokens);
        free(targets);
        fclose(metrics);
        goto fail;
    }
    interrupt_install();
    progress_line prog;
    progress_init(&prog, cfg.progress);
    gpt_adamw_params opt = {0, (float)cfg.beta1, (float)cfg.beta2, (float)cfg.adam_eps,
                            (float)cfg.weight_decay, (float)cfg.grad_clip};
    double t_start = now_seconds(), tok_rate = 0;
    int exit_code = 0;
    while (st.step < cfg.steps) {
        double t0 = now_seconds();
        opt.lr = (float)lr_at(&cfg, (int)st.step);
        src.batch(&src, &st.data_rng, tokens, targets, B, T);
        gpt_set_batch(&m, tokens, targets, NULL, B, T);
        float norm = 0.0f;
        float loss = gpt_train_step(&m, B, T, &opt, &norm);
        st.step++;
        double dt = now_seconds() - t0;
        tok_rate = B * T / dt;
        if (!isfinite(loss) || !isfinite(norm)) {
            fprintf(stderr, "\nexitrl: loss or gradient norm became non-finite at step %lld (loss %g, norm %g); "
                            "the last checkpoint in %s is intact. Try a lower lr.\n",
                    (long long)st.step, loss, norm, dir);
            exit_code = 1;
            break;
        }
        int last = st.step == cfg.steps;
        if (st.step % cfg.log_every == 0 || last || st.step == 1) {
            jsonl_line j;
            jsonl_begin(&j, metrics);
            jsonl_int(&j, "step", st.step);
            jsonl_num(&j, "loss", loss);
            jsonl_num(&j, "lr", opt.lr);
            jsonl_num(&j, "grad_norm", norm);
            jsonl_num(&j, "tokens_per_s", tok_rate);
            jsonl_num(&j, "step_ms", dt * 1e3);
            jsonl_num(&j, "elapsed_s", now_seconds() - t_start);
            jsonl_end(&j);
        }
        char text[160];
        snprintf(text, sizeof text, "loss %.4f lr %.2e %.0f tok/s", loss, opt.lr, tok_rate);
        progress_update(&prog, "pretrain step", st.step, cfg.steps, text);
        if ((cfg.eval_every && st.step % cfg.eval_every == 0) || last) {
            progress_finish(&prog);
            jsonl_line j;
            jsonl_begin(&j, metrics);
            jsonl_int(&j, "step", st.step);
            src.evaluate(&src, &m, &cfg, &j);
            jsonl_end(&j);
            fprintf(stderr, "eval at step %lld: %s}\n", (long long)st.step, j.buf);
        }
        if ((cfg.ckpt_every && st.step % cfg.ckpt_every == 0) || last || interrupt_requested()) {
            if (save(dir, &m, &st, &cfg)) {
                exit_code = 1;
                break;
            }
        }
        if (interrupt_requested()) {
            progress_finish(&prog);
            fprintf(stderr, "exitrl: interrupted at step %lld; checkpoint saved in %s/checkpoint.bin "
                            "(continue with --resume %s/checkpoint.bin)\n",
                    (long long)st.step, dir, dir);
            exit_code = 130;
            break;
        }
    }
    progress_finish(&prog);
    if (exit_code == 0)
        fprintf(stderr, "exitrl pretrain: done, %lld steps in %.1fs; checkpoint %s/checkpoint.bin\n",
                (long long)st.step, now_seconds() - t_start, dir);
    free(tokens);
    free(targets);
    fclose(metrics);
    gpt_destroy(&m);
    be->destroy(be);
    src.close(&src);
    return exit_code;

fail:
    gpt_destroy(&m);
    be->destroy(be);
    src.close(&src);
    return 1;
}
