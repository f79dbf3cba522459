/* exitrl: train small language-model policies to improve their own answers (ExIt). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "dist/dist.h"
#include "ops.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"pretrain", cmd_pretrain, "supervised next-token training (text or task demonstrations)"},
    {"train", cmd_train, "RL with GRPO / ExIt from a warm-started checkpoint"},
    {"eval", cmd_eval, "multi-step self-improvement evaluation on held-out instances, JSON + PNG"},
    {"export", cmd_export, "write a checkpoint's weights as safetensors + GPT-2 config.json"},
    {"info", cmd_info, "backends, library versions, devices, model sizes"},
};
#define NUM_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "exitrl %s - Exploratory Iteration (ExIt) for small GPT policies, in C and CUDA\n\n"
               "usage: exitrl <command> [--help] [options]\n\ncommands:\n", EXITRL_VERSION);
    for (int i = 0; i < NUM_COMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'exitrl <command> --help' describes a command and its options.\n");
}

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("exitrl %s\n", EXITRL_VERSION);
        return 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "exitrl: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv) {
    exitrl_cpu_blas_choose_core(argv);
    if (dist_init(&argc, &argv)) return 1;
    int rc = run_command(argc, argv);
    dist_finalize();
    return rc;
}
