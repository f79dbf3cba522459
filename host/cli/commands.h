/* The subcommands of the exitrl CLI. Each takes the arguments after its name and returns the exit
 * code: 0 success, 1 runtime error, 2 usage error (130 when interrupted after saving). */
#ifndef EXITRL_COMMANDS_H
#define EXITRL_COMMANDS_H
int cmd_pretrain(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_info(int argc, char **argv);
#endif
