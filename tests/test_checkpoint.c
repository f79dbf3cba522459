/* Checkpoints: a bit-exact round trip of weights and optimizer state, and rejection (clear message,
 * no crash) of truncated, bit-flipped, wrong-version, absurd-size and foreign files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/model_io.h"
#include "test_util.h"

static const char *PATH = "test_checkpoint.bin";
static const char *BAD = "test_checkpoint_bad.bin";

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}
static void write_file(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}
static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }

/* Opens BAD and expects a failure whose message contains `expect`. */
static void expect_reject(const char *what, const char *expect) {
    ckpt_reader r;
    char err[512] = "";
    int rc = ckpt_open(&r, BAD, err, sizeof err);
    CHECK(rc != 0, "%s: accepted", what);
    CHECK(strstr(err, expect) != NULL, "%s: message '%s' lacks '%s'", what, err, expect);
    if (rc == 0) ckpt_close(&r);
}

int main(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    gpt_config cfg = {2, 2, 32, 16, 265, 320};
    gpt_model m, m2;
    CHECK(gpt_create(&m, be, &cfg, 2, 8) == 0, "create");
    gpt_init_random(&m, 7);
    /* Take two optimizer steps so the moments are non-trivial. */
    int tok[16], tgt[16];
    for (int i = 0; i < 16; i++) tok[i] = (i * 37) % 265, tgt[i] = (i * 11 + 3) % 265;
    gpt_adamw_params opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    for (int s = 0; s < 2; s++) {
        gpt_set_batch(&m, tok, tgt, NULL, 2, 8);
        gpt_zero_grad(&m);
        gpt_forward_backward(&m, 2, 8);
        gpt_update(&m, &opt);
    }
    char err[512];
    const char extra_data[] = "extra section payload";
    ckpt_section extra = {"extra", extra_data, sizeof extra_data};
    CHECK(model_save(PATH, &m, &extra, 1, err, sizeof err) == 0, "save: %s", err);
    CHECK(access("test_checkpoint.bin.tmp", F_OK) != 0, "temporary file left behind");

    /* Round trip. */
    ckpt_reader r;
    gpt_config cfg2;
    CHECK(ckpt_open(&r, PATH, err, sizeof err) == 0, "open: %s", err);
    CHECK(model_read_config(&r, &cfg2, err, sizeof err) == 0, "config: %s", err);
    CHECK(memcmp(&cfg, &cfg2, sizeof cfg) == 0, "config differs");
    CHECK(gpt_create(&m2, be, &cfg2, 2, 8) == 0, "create 2");
    CHECK(model_load(&r, &m2, 1, err, sizeof err) == 0, "load: %s", err);
    char got[sizeof extra_data];
    CHECK(ckpt_read(&r, "extra", got, sizeof got, err, sizeof err) == 0 && !strcmp(got, extra_data), "extra");
    CHECK(ckpt_read(&r, "extra", got, sizeof got - 1, err, sizeof err) != 0 && strstr(err, "expected"),
          "a size mismatch must be an error: %s", err);
    CHECK(ckpt_section_size(&r, "missing") == -1, "missing section");
    ckpt_close(&r);
    size_t bytes = m.num_params * sizeof(float);
    CHECK(memcmp(m.master, m2.master, bytes) == 0, "weights not bit-exact");
    CHECK(memcmp(m.adam_m, m2.adam_m, bytes) == 0, "adam m not bit-exact");
    CHECK(memcmp(m.adam_v, m2.adam_v, bytes) == 0, "adam v not bit-exact");
    CHECK(m2.adam_step == 2, "adam step %d", m2.adam_step);

    /* A mismatched model config: the params section has the wrong size for it. */
    gpt_config other = cfg;
    other.d_model = 64;
    gpt_model m3;
    CHECK(gpt_create(&m3, be, &other, 1, 4) == 0, "create 3");
    CHECK(ckpt_open(&r, PATH, err, sizeof err) == 0, "reopen");
    CHECK(model_load(&r, &m3, 0, err, sizeof err) != 0 && strstr(err, "params"), "wrong config accepted: %s", err);
    ckpt_close(&r);
    gpt_destroy(&m3);

    size_t n = 0;
    unsigned char *good = read_file(PATH, &n);
    unsigned char *bad = malloc(n + 64);

    /* Truncated at many points, including inside the header and the table. */
    size_t cuts[] = {0, 7, 20, 31, 40, 100, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(BAD, good, cuts[i]);
        ckpt_reader rr;
        CHECK(ckpt_open(&rr, BAD, err, sizeof err) != 0, "truncated at %zu accepted", cuts[i]);
    }
    write_file(BAD, good, n - 1);
    expect_reject("truncated", "truncated");
    /* Extended. */
    memcpy(bad, good, n);
    memset(bad + n, 0, 64);
    write_file(BAD, bad, n + 64);
    expect_reject("extended", "header says");
    /* A bit flip in the payload, in the table and in the header. */
    size_t flips[] = {n - 5, n / 2, 40, 12};
    const char *expect[] = {"CRC", "CRC", "CRC", "CRC"};
    for (int i = 0; i < 4; i++) {
        memcpy(bad, good, n);
        bad[flips[i]] ^= 0x10;
        write_file(BAD, bad, n);
        expect_reject("bit flip", expect[i]);
    }
    /* Wrong version (with a valid header CRC, so the version check itself is exercised). */
    memcpy(bad, good, n);
    put_u32(bad + 8, 99);
    put_u32(bad + 28, crc32_update(0, bad, 28));
    write_file(BAD, bad, n);
    expect_reject("version", "version 99");
    /* Absurd section count and absurd section size. */
    memcpy(bad, good, n);
    put_u32(bad + 12, 1000000);
    put_u32(bad + 28, crc32_update(0, bad, 28));
    write_file(BAD, bad, n);
    expect_reject("section count", "absurd section count");
    memcpy(bad, good, n);
    unsigned char *size_field = bad + 32 + 24 + 8; /* first entry: name[24], offset, size */
    for (int i = 0; i < 8; i++) size_field[i] = 0xFF;
    put_u32(bad + 24, crc32_update(0, bad + 32, (size_t)(6 * 48)));
    put_u32(bad + 28, crc32_update(0, bad, 28));
    write_file(BAD, bad, n);
    expect_reject("section size", "outside the file");
    /* Table entries that are well signed but wrong (found by tests/fuzz/fuzz_checkpoint.c): a second
     * section of the same name (which one would a reader use?), a gap between sections, a name
     * without its NUL padding. */
    const char *table_faults[][2] = {{"params", "same name"}, {"gap", "layout"}, {"pad", "padded with NULs"}};
    for (int i = 0; i < 3; i++) {
        memcpy(bad, good, n);
        unsigned char *second = bad + 32 + 48; /* the second entry: params */
        if (i == 0) memcpy(second, "model_config", 13);
        if (i == 1) put_u32(second + 24, (uint32_t)(second[24] | second[25] << 8) + 4);
        if (i == 2) memset(second + 7, 'x', 3);
        put_u32(bad + 24, crc32_update(0, bad + 32, (size_t)(6 * 48)));
        put_u32(bad + 28, crc32_update(0, bad, 28));
        write_file(BAD, bad, n);
        expect_reject(table_faults[i][0], table_faults[i][1]);
    }
    /* Not a checkpoint at all. */
    write_file(BAD, (const unsigned char *)"hello, this is text and not a checkpoint file", 46);
    expect_reject("foreign", "bad magic");
    write_file(BAD, (const unsigned char *)"", 0);
    expect_reject("empty", "not an exitrl checkpoint");
    ckpt_reader rr;
    CHECK(ckpt_open(&rr, "/nonexistent/dir/ckpt.bin", err, sizeof err) != 0 && strstr(err, "cannot open"),
          "missing file: %s", err);

    /* A failed write (unwritable directory) leaves no file and reports why. */
    CHECK(model_save("/nonexistent/dir/ckpt.bin", &m, NULL, 0, err, sizeof err) != 0 && strstr(err, "cannot create"),
          "save to a missing directory: %s", err);

    free(good);
    free(bad);
    remove(PATH);
    remove(BAD);
    gpt_destroy(&m);
    gpt_destroy(&m2);
    be->destroy(be);
    return test_finish("test_checkpoint");
}
