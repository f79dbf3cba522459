/* `exitrl info`: what this build can run on, and what a model config costs. */
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/commands.h"
#include "dist/dist.h"
#include "run/config.h"
#include "model/model.h"
#include "run/setup.h"

static void usage(FILE *f) {
    fprintf(f, "usage: exitrl info [--model tiny|small|gpt2-124m] [--batch_size B] [--seq_len T] [--key value ...]\n\n"
               "Prints the backends compiled in, the BLAS the CPU backend uses, CUDA/cuBLAS/cuDNN versions and\n"
               "devices when present, and the parameter count and memory of the model config for a batch\n"
               "of B x T tokens.\n");
}

int cmd_info(int argc, char **argv) {
    exitrl_config cfg;
    int rc = command_config(argc, argv, usage, &cfg);
    if (rc) return rc < 0 ? 0 : rc;
    gpt_config mc;
    if ((rc = setup_model_config(&cfg, &mc))) return rc;

    printf("exitrl %s\n", EXITRL_VERSION);
    printf("CPU backend: fp32 reference");
#ifdef _OPENMP
    printf(", OpenMP (%d threads)", omp_get_max_threads());
#else
    printf(", no OpenMP");
#endif
    printf("\n");
    char buf[4096];
    exitrl_cpu_blas_info(buf, sizeof buf);
    printf("BLAS: %s\n", buf);
    printf("MPI: %s%s\n", dist_library(), dist_size() > 1 ? dist_note() : "");
    exitrl_cuda_info(buf, sizeof buf);
    fputs(buf, stdout);
    printf("GPU available: %s\n", exitrl_cuda_available() ? "yes" : "no");

    size_t P = gpt_num_params(&mc);
    int B = cfg.batch_size, T = cfg.seq_len < mc.max_seq ? cfg.seq_len : mc.max_seq;
    printf("model %s: n_layer %d, n_head %d, d_model %d, max_seq %d, vocab %d (padded %d)\n", cfg.model,
           mc.n_layer, mc.n_head, mc.d_model, mc.max_seq, mc.vocab, mc.vocab_padded);
    printf("  parameters: %zu (%.2f M)\n", P, P / 1e6);
    printf("  weights + grads + AdamW state (fp32): %.1f MiB\n", 4.0 * P * 4 / 1048576.0);
    printf("  activations for batch %d x %d: %.1f MiB fp32, %.1f MiB bf16 (+ %.1f MiB bf16 weight copy)\n", B, T,
           gpt_activation_bytes(&mc, EXITRL_F32, B, T) / 1048576.0,
           gpt_activation_bytes(&mc, EXITRL_BF16, B, T) / 1048576.0, 2.0 * P / 1048576.0);
    return 0;
}
