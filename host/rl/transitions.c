/* Attempt-to-attempt diagnostics (contract in transitions.h). */
#include "rl/transitions.h"

#include <string.h>

#define EDIT_MAX 1024

size_t edit_distance(const char *a, size_t na, const char *b, size_t nb) {
    const size_t left_a = na > EDIT_MAX ? na - EDIT_MAX : 0, left_b = nb > EDIT_MAX ? nb - EDIT_MAX : 0;
    const size_t extra = left_a > left_b ? left_a : left_b;
    na -= left_a, nb -= left_b;
    size_t row[EDIT_MAX + 1]; /* one row of the DP table: distances from a[0..i) to b[0..j) */
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[nb] + extra;
}

void transition_add(transition_stats *s, const char *prev, size_t prev_len, float prev_reward, const char *next,
                    size_t next_len, float next_reward) {
    const int was = prev_reward >= 1.0f, is = next_reward >= 1.0f;
    s->n++;
    s->right_right += was && is;
    s->right_wrong += was && !is;
    s->wrong_right += !was && is;
    s->wrong_wrong += !was && !is;
    const float d = next_reward - prev_reward;
    s->improved += d > 1e-6f;
    s->worse += d < -1e-6f;
    s->unchanged += d >= -1e-6f && d <= 1e-6f;
    s->copies += prev_len == next_len && memcmp(prev, next, prev_len) == 0;
    s->edit_sum += (double)edit_distance(prev, prev_len, next, next_len);
}

double transition_share(const transition_stats *s, long count) { return s->n ? (double)count / s->n : 0.0; }

void feedback_class(const char *feedback, char *out, size_t cap) {
    size_t o = 0;
    if (!feedback[0]) feedback = "(none)";
    for (const char *f = feedback; *f && o + 1 < cap; f++) {
        if (*f >= '0' && *f <= '9') {
            out[o++] = '#';
            while (f[1] >= '0' && f[1] <= '9') f++;
        } else {
            out[o++] = (*f == '"' || *f == '\\' || (unsigned char)*f < 0x20 || (unsigned char)*f >= 0x7f) ? '?' : *f;
        }
    }
    out[o] = 0;
}

void transition_classes_add(transition_classes *c, const char *prev_feedback, const char *prev, size_t prev_len,
                            float prev_reward, const char *next, size_t next_len, float next_reward) {
    char name[TRANSITION_CLASS_CAP];
    feedback_class(prev_feedback, name, sizeof name);
    int i = 0;
    while (i < c->n_classes && strcmp(c->name[i], name)) i++;
    if (i == c->n_classes) { /* a class not seen yet; the last slot is "other" */
        if (i == TRANSITION_MAX_CLASSES) {
            i--;
        } else {
            strcpy(c->name[i], i == TRANSITION_MAX_CLASSES - 1 ? "other" : name);
            c->n_classes++;
        }
    }
    transition_add(&c->stats[i], prev, prev_len, prev_reward, next, next_len, next_reward);
}
