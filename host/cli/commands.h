/* The subcommands of the exitrl CLI. Each takes the arguments after its name and returns the exit
 * code: 0 success, 1 runtime error, 2 usage error (130 when interrupted after saving). */
#ifndef EXITRL_COMMANDS_H
#define EXITRL_COMMANDS_H
#include <stdio.h>

#include "run/config.h"

int cmd_pretrain(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* The preamble they share: --help or -h anywhere prints usage to stdout and returns -1 (the
 * command then exits 0); otherwise cfg gets the defaults, then the --config files and --key value
 * overrides in order. Returns 0, -1 (help shown) or 2 after a message naming the key. */
int command_config(int argc, char **argv, void (*usage)(FILE *f), exitrl_config *cfg);
/* A command's config check failed with rc (2 after a message naming the key). On --resume the
 * configuration came from the checkpoint, so this says so and returns 1 (a bad checkpoint, not a
 * bad command line); otherwise returns rc. */
int command_config_error(int rc, const exitrl_config *cfg);
#endif
