// libFuzzer target for the checkpoint reader and everything a resume checks before use: the
// container (ckpt_open, ckpt_read), model_read_config, the run_config section (run_resume_config),
// the weights and AdamW state (model_load into a CPU model) and the exit_buffer section. Built and
// run by tests/fuzz/run.sh (not part of ctest), seeded with real checkpoints of a tiny model.
// Input: byte 0 holds flags, the rest is the file. Flag 1 re-signs it first (every section CRC
// where the table's bounds allow, then the table and header CRCs: plain CRC-32), flag 2 also sets
// the header's file size, so mutations reach the checks behind the CRCs. Aborts when a section of
// an opened checkpoint cannot be read back; ASan and UBSan catch the rest.
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/model_io.h"
#include "rl/task_buffer.h"
#include "run/config.h"
#include "run/run_loop.h"

static uint32_t get_u32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get_u64(const unsigned char *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }
static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }

static void resign(unsigned char *f, size_t len, int set_size) {
    enum { HEADER = 32, ENTRY = CKPT_NAME_LEN + 24 };
    if (len < HEADER) return;
    uint32_t n = get_u32(f + 12);
    if (n < 1 || n > CKPT_MAX_SECTIONS || HEADER + (size_t)n * ENTRY > len) return;
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *e = f + HEADER + i * ENTRY;
        uint64_t off = get_u64(e + CKPT_NAME_LEN), size = get_u64(e + CKPT_NAME_LEN + 8);
        if (off <= len && size <= len - off) put_u32(e + CKPT_NAME_LEN + 16, crc32_update(0, f + off, size));
    }
    if (set_size) put_u64(f + 16, len);
    put_u32(f + 24, crc32_update(0, f + HEADER, (size_t)n * ENTRY));
    put_u32(f + 28, crc32_update(0, f, 28));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static exitrl_backend *be;
    static char path[64];
    if (!be) {
        be = exitrl_backend_cpu_create();
        snprintf(path, sizeof path, "/tmp/fuzz_checkpoint.%d.bin", (int)getpid());
    }
    if (size < 1) return 0;
    unsigned char *file = malloc(size);
    memcpy(file, data + 1, size - 1);
    if (data[0] & 1) resign(file, size - 1, data[0] & 2);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(file, 1, size - 1, f) != size - 1 || fclose(f)) abort();
    free(file);

    ckpt_reader r;
    char err[512];
    if (ckpt_open(&r, path, err, sizeof err)) return 0;
    for (uint32_t i = 0; i < r.n; i++) { /* every section of an opened checkpoint reads back */
        void *buf = malloc(r.entries[i].size ? r.entries[i].size : 1);
        if (!buf || ckpt_read(&r, r.entries[i].name, buf, r.entries[i].size, err, sizeof err)) abort();
        free(buf);
    }
    gpt_config mc;
    exitrl_config cfg;
    config_defaults(&cfg);
    cfg.buffer_capacity = 16;
    if (!model_read_config(&r, &mc, err, sizeof err)) {
        if (ckpt_section_size(&r, "run_config") >= 0) {
            snprintf(cfg.resume, sizeof cfg.resume, "%s", path);
            run_resume_config(&cfg, &r, &mc); /* on success the saved buffer_capacity */
        }
        gpt_model m;
        if (gpt_create(&m, be, &mc, 1, 2) == 0) {
            model_load(&r, &m, 1, err, sizeof err);
            gpt_destroy(&m);
        }
    }
    int64_t n = ckpt_section_size(&r, "exit_buffer");
    if (n >= 0 && cfg.buffer_capacity <= 4096) {
        task_buffer_options o;
        task_buffer_options_default(&o);
        o.capacity = cfg.buffer_capacity;
        o.min_size = 0;
        task_buffer b;
        void *buf = malloc(n ? (size_t)n : 1);
        if (!task_buffer_init(&b, &o, err, sizeof err)) {
            if (buf && !ckpt_read(&r, "exit_buffer", buf, (uint64_t)n, err, sizeof err))
                task_buffer_deserialize(&b, buf, (size_t)n, err, sizeof err);
            task_buffer_free(&b);
        }
        free(buf);
    }
    ckpt_close(&r);
    return 0;
}
