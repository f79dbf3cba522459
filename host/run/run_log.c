#define _POSIX_C_SOURCE 200809L
#include "run/run_log.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* mkdir that accepts an existing directory, but not an existing file. */
static int make_dir(const char *path) {
    struct stat st;
    if (mkdir(path, 0755) == 0) return 0;
    if (errno != EEXIST) return -1;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    errno = ENOTDIR;
    return -1;
}

static int mkdir_p(const char *path) {
    char tmp[512];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (make_dir(tmp)) return -1;
            *p = '/';
        }
    return make_dir(tmp);
}

int run_dir_create(const char *out_dir, const char *name, char *dir, size_t dir_len) {
    if (!name[0] || strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0) {
        fprintf(stderr, "exitrl: run name '%s' must be a plain, non-empty file name\n", name);
        return -1;
    }
    if (snprintf(dir, dir_len, "%s/%s", out_dir, name) >= (int)dir_len || mkdir_p(dir)) {
        fprintf(stderr, "exitrl: cannot create run directory %s/%s: %s\n", out_dir, name, strerror(errno));
        return -1;
    }
    return 0;
}

FILE *metrics_open(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "a");
    if (!f) fprintf(stderr, "exitrl: cannot open %s: %s\n", path, strerror(errno));
    return f;
}

static void append(jsonl_line *j, const char *fmt_key, const char *key, const char *value) {
    int n = snprintf(j->buf + j->len, sizeof j->buf - j->len, fmt_key, j->len > 1 ? "," : "", key, value);
    if (n > 0 && (size_t)n < sizeof j->buf - j->len) j->len += (size_t)n;
}

void jsonl_begin(jsonl_line *j, FILE *f) {
    j->f = f;
    j->buf[0] = '{';
    j->buf[1] = 0;
    j->len = 1;
}
void jsonl_int(jsonl_line *j, const char *key, long long v) {
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    append(j, "%s\"%s\":%s", key, s);
}
void jsonl_num(jsonl_line *j, const char *key, double v) {
    char s[32];
    if (isfinite(v)) snprintf(s, sizeof s, "%.6g", v);
    else snprintf(s, sizeof s, "null");
    append(j, "%s\"%s\":%s", key, s);
}
void jsonl_str(jsonl_line *j, const char *key, const char *v) {
    char esc[512];
    size_t k = 0;
    for (const char *p = v; *p && k + 7 < sizeof esc; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') { esc[k++] = '\\'; esc[k++] = (char)c; }
        else if (c < 0x20) k += (size_t)snprintf(esc + k, sizeof esc - k, "\\u%04x", c);
        else esc[k++] = (char)c;
    }
    esc[k] = 0;
    append(j, "%s\"%s\":\"%s\"", key, esc);
}
static int write_errno; /* errno of the first failed metrics write, 0 = none */

void jsonl_end(jsonl_line *j) {
    if (!j->f) return;
    if ((fprintf(j->f, "%s}\n", j->buf) < 0 || fflush(j->f)) && !write_errno) write_errno = errno ? errno : EIO;
}

int metrics_check(FILE *f, const char *dir) {
    if (!ferror(f)) return 0;
    fprintf(stderr, "exitrl: cannot write %s/metrics.jsonl: %s\n", dir, strerror(write_errno ? write_errno : EIO));
    return -1;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_init(progress_line *p, int mode) {
    p->is_tty = isatty(fileno(stderr));
    p->enabled = mode == 1 || (mode == -1 && p->is_tty);
    p->start = now_seconds();
    p->last_print = 0;
}

void progress_update(progress_line *p, const char *label, long long done, long long total,
                     const char *text) {
    if (!p->enabled) return;
    double t = now_seconds();
    if (!p->is_tty && t - p->last_print < 10.0 && done < total) return;
    if (p->is_tty && t - p->last_print < 0.1 && done < total) return;
    p->last_print = t;
    double elapsed = t - p->start, eta = done > 0 ? elapsed * (double)(total - done) / done : 0;
    fprintf(stderr, "%s%s %lld/%lld %s | %.0fs elapsed, ETA %.0fs%s", p->is_tty ? "\r\033[K" : "",
            label, done, total, text, elapsed, eta, p->is_tty ? "" : "\n");
    fflush(stderr);
}

void progress_finish(progress_line *p) {
    if (p->enabled && p->is_tty) fputc('\n', stderr);
}
