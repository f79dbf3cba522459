/* Task-demonstration source for `exitrl pretrain --task`: wired to host/tasks once it lands. */
#include <stdio.h>

#include "pretrain_source.h"

int pretrain_source_open_task(pretrain_source *s, const exitrl_config *cfg) {
    (void)s;
    fprintf(stderr, "exitrl: task '%s' is not available in this build yet\n", cfg->task);
    return -1;
}
