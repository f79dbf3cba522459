#include "rl/completion.h"

#include "model/tokenizer.h"

int completion_answer(const int *gen, int n, int hit_eos, char *buf, int cap) {
    if (cap > 0) buf[0] = 0;
    if (!hit_eos || n < 1 || gen[n - 1] != TOK_EOS || n > cap) return -1;
    for (int i = 0; i < n - 1; i++) {
        if (gen[i] < 0 || gen[i] > 255) {
            buf[0] = 0;
            return -1;
        }
        buf[i] = (char)gen[i];
    }
    buf[n - 1] = 0;
    return n - 1;
}

int completion_raw(const int *gen, int n, char *buf, int cap) {
    int k = 0;
    while (k < n && k < cap && gen[k] >= 0 && gen[k] < 256) {
        buf[k] = (char)gen[k];
        k++;
    }
    return k;
}
