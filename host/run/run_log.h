/* Run directory, metrics.jsonl and the one-line live progress display. */
#ifndef EXITRL_RUN_LOG_H
#define EXITRL_RUN_LOG_H
#include <stdio.h>

/* Creates <out_dir>/<name>/ (and out_dir) if missing; writes the path into dir. Returns 0, or -1
 * after a message naming the path and the reason (also when something other than a directory is
 * in the way). */
int run_dir_create(const char *out_dir, const char *name, char *dir, size_t dir_len);

typedef struct {
    FILE *f;
    char buf[4096];
    size_t len;
} jsonl_line;

/* Appends to <dir>/metrics.jsonl (created if missing). Returns NULL with a message on failure. */
FILE *metrics_open(const char *dir);
/* 0 while every line written to f (the metrics file of the run in dir) has reached the file; else
 * -1 after a message naming <dir>/metrics.jsonl and the reason of the first failed write. */
int metrics_check(FILE *f, const char *dir);
/* Builds one JSON object field by field, then writes it as a line and flushes (a failed write is
 * remembered for metrics_check). */
void jsonl_begin(jsonl_line *j, FILE *f);
void jsonl_int(jsonl_line *j, const char *key, long long v);
void jsonl_num(jsonl_line *j, const char *key, double v); /* non-finite values are written as null */
void jsonl_str(jsonl_line *j, const char *key, const char *v);
void jsonl_end(jsonl_line *j);

/* Seconds since an arbitrary fixed point (monotonic clock). */
double now_seconds(void);

typedef struct {
    int enabled, is_tty;
    double start, last_print;
} progress_line;

/* mode: 1 always, 0 never, -1 when stderr is a terminal. */
void progress_init(progress_line *p, int mode);
/* Prints "label done/total <text> ETA"; on a terminal it redraws one line, else at most every 10 s. */
void progress_update(progress_line *p, const char *label, long long done, long long total,
                     const char *text);
void progress_finish(progress_line *p);
#endif
