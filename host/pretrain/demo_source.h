/* The task-demonstration source of `exitrl pretrain --task`: noisy-teacher demonstrations (base,
 * improve and diverge formats) of the training split; held-out loss, score and format-valid rate. */
#ifndef EXITRL_PRETRAIN_DEMO_SOURCE_H
#define EXITRL_PRETRAIN_DEMO_SOURCE_H
#include "pretrain/source.h"

/* Opens the source for cfg->task; pretrain_source_open's contract. */
int pretrain_source_open_task(pretrain_source *s, const exitrl_config *cfg);
#endif
