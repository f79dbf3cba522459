#include "model/tokenizer.h"

#include <stdio.h>
#include <string.h>

static const char *special_names[] = {"<bos>",     "<eos>",    "<pad>",    "<request>", "<response>",
                                      "<improve>", "<diverge>", "<answer>", "<feedback>"};

const char *tok_special_name(int id) {
    if (id < 256 || id >= EXITRL_VOCAB) return NULL;
    return special_names[id - 256];
}

int tok_encode(const char *text, int *out, int cap) {
    size_t n = strlen(text);
    if ((size_t)cap < n) return -1;
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)text[i];
    return (int)n;
}

size_t tok_render(const int *toks, int n, char *buf, size_t cap) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *name = tok_special_name(toks[i]);
        char tmp[16];
        const char *piece = name;
        size_t plen;
        if (!name) {
            if (toks[i] >= 0 && toks[i] < 256) {
                tmp[0] = (char)toks[i];
                tmp[1] = 0;
                plen = 1;
            } else {
                plen = (size_t)snprintf(tmp, sizeof tmp, "<%d>", toks[i]);
            }
            piece = tmp;
        } else {
            plen = strlen(name);
        }
        if (len + plen < cap) memcpy(buf + len, piece, plen);
        len += plen;
    }
    if (cap) buf[len < cap ? len : cap - 1] = 0;
    return len;
}

int tok_decode_bytes(const int *toks, int n, char *buf, int cap) {
    int k = 0;
    for (int i = 0; i < n && k < cap - 1; i++) {
        if (toks[i] < 0 || toks[i] > 255) break;
        buf[k++] = (char)toks[i];
    }
    if (cap > 0) buf[k] = 0;
    return k;
}
