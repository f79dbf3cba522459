/* Byte-level tokenizer: ids 0..255 are bytes; special tokens follow; the embedding table is padded
 * to a multiple of 64 rows (EXITRL_VOCAB_PADDED) so GPU kernels see aligned shapes. */
#ifndef EXITRL_TOKENIZER_H
#define EXITRL_TOKENIZER_H
#include <stddef.h>

enum {
    TOK_BOS = 256,      /* start of a sequence */
    TOK_EOS = 257,      /* end of the model's answer; generation stops here */
    TOK_PAD = 258,      /* padding, never a training target */
    TOK_REQUEST = 259,  /* section: the task's request */
    TOK_RESPONSE = 260, /* section: a previous attempt ("current response") */
    TOK_IMPROVE = 261,  /* instruction: improve the current response */
    TOK_DIVERGE = 262,  /* instruction: give a significantly different response */
    TOK_ANSWER = 263,   /* section: the model's answer follows */
    TOK_FEEDBACK = 264, /* section: verifier feedback on the previous attempt */
    EXITRL_VOCAB = 265,
    EXITRL_VOCAB_PADDED = 320
};

/* Name of a special token ("<bos>", ...) or NULL for a byte id. */
const char *tok_special_name(int id);
/* Appends the bytes of text as tokens to out (capacity cap). Returns tokens written, or -1 if
 * they do not fit (nothing is truncated silently). */
int tok_encode(const char *text, int *out, int cap);
/* Writes a printable rendering of tokens (bytes as-is, specials as <name>) into buf (always
 * NUL-terminated). Returns the length it needed (like snprintf). */
size_t tok_render(const int *toks, int n, char *buf, size_t cap);
/* Decodes only byte tokens [0,255] into buf (NUL-terminated), stopping at the first special
 * token or at cap-1. Returns bytes written. */
int tok_decode_bytes(const int *toks, int n, char *buf, int cap);
#endif
