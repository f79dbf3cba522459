/* Bounded byte scanning for answer parsers: every helper takes (s, len, *pos) and never reads at or
 * past len. Header-only; used by the arith and knapsack parsers. */
#ifndef EXITRL_TASKS_SCAN_H
#define EXITRL_TASKS_SCAN_H
#include <stddef.h>
#include <stdint.h>

static inline int scan_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static inline void scan_skip_space(const char *s, size_t len, size_t *pos) {
    while (*pos < len && scan_is_space(s[*pos])) (*pos)++;
}

/* Reads a run of decimal digits at *pos. Returns the number of digits read (0 if none); the value
 * goes to *value only when the run has at most max_digits digits (max_digits <= 18), otherwise
 * *too_long is set. The whole run is consumed either way. */
static inline int scan_digits(const char *s, size_t len, size_t *pos, int max_digits, int64_t *value,
                              int *too_long) {
    int64_t v = 0;
    int n = 0;
    while (*pos < len && s[*pos] >= '0' && s[*pos] <= '9') {
        if (++n <= max_digits) v = v * 10 + (s[*pos] - '0');
        (*pos)++;
    }
    *too_long = n > max_digits;
    if (n && !*too_long) *value = v;
    return n;
}
#endif
