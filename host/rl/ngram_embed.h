/* The alternative diversity embedding (docs/DESIGN.md §5): a hashed n-gram projection of a completion's
 * tokens. Each 1-, 2- and 3-gram adds a pseudo-random +-1 vector (from a hash of the n-gram) to a
 * D-dimensional sum, which is then divided by the number of n-grams. Cheap, on the host, and
 * independent of the policy's own representation. */
#ifndef EXITRL_NGRAM_EMBED_H
#define EXITRL_NGRAM_EMBED_H
/* emb[D] from tokens[0..n). n = 0 gives the zero vector. */
void ngram_embed(const int *tokens, int n, float *emb, int D);
#endif
