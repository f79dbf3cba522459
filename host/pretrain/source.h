/* Where `exitrl pretrain` gets its batches and how it evaluates: a text file (held-out loss) or a
 * task domain's demonstrations (held-out loss, score and format-valid rate of greedy answers). */
#ifndef EXITRL_PRETRAIN_SOURCE_H
#define EXITRL_PRETRAIN_SOURCE_H
#include "run/config.h"
#include "model/model.h"
#include "model/rng.h"
#include "run/run_log.h"

typedef struct pretrain_source pretrain_source;
struct pretrain_source {
    char describe[320]; /* for the start-up line */
    void *ctx;
    /* Fills tokens/targets [B*T]; target -1 marks positions that are not trained on. */
    void (*batch)(pretrain_source *s, rng_state *r, int *tokens, int *targets, int B, int T);
    /* Evaluates on held-out data and adds its fields to the metrics line. */
    void (*evaluate)(pretrain_source *s, gpt_model *m, const exitrl_config *cfg, jsonl_line *j);
    void (*close)(pretrain_source *s);
};

/* Opens the source the config names (data or task). Returns 0, or the exit code after a message:
 * 2 for a config error, 1 for a runtime error. On failure s->close (if set) must still be called. */
int pretrain_source_open(pretrain_source *s, const exitrl_config *cfg);
/* Mean held-out loss over n_batches fixed batches drawn by a generator: shared by both sources. */
typedef void (*batch_fn)(pretrain_source *s, rng_state *r, int *tokens, int *targets, int B, int T);
double heldout_loss(pretrain_source *s, batch_fn make_batch, gpt_model *m, int B, int T, int n_batches,
                    uint64_t seed);
#endif
