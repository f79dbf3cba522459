/* Plain next-token data: a byte file, split into train (first 90%) and held-out (last 10%) parts;
 * batches are random windows of T+1 bytes (tokens = window[0..T-1], targets = window[1..T]). */
#ifndef EXITRL_PRETRAIN_TEXT_SOURCE_H
#define EXITRL_PRETRAIN_TEXT_SOURCE_H
#include <stddef.h>

#include "model/rng.h"
#include "pretrain/source.h"

typedef struct {
    unsigned char *bytes;
    size_t n, n_train; /* bytes [0, n_train) train, [n_train, n) held out */
} text_data;

/* Loads a file; it must hold at least (T+1) bytes in each split. Returns 0 or -1 with a message. */
int text_data_load(text_data *d, const char *path, int T);
void text_data_free(text_data *d);
/* Fills tokens/targets [B*T] with random windows of the chosen split (0 train, 1 held out). */
void text_data_batch(const text_data *d, int split, rng_state *r, int *tokens, int *targets, int B, int T);
/* The text source of `exitrl pretrain --data FILE` (held-out loss); pretrain_source_open's contract. */
int pretrain_source_open_text(pretrain_source *s, const exitrl_config *cfg);
#endif
