#define _POSIX_C_SOURCE 200809L
#include "model/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define HEADER_BYTES 32
#define ENTRY_BYTES (CKPT_NAME_LEN + 24)
static const char MAGIC[8] = {'E', 'X', 'I', 'T', 'R', 'L', 'C', 'K'};

uint32_t crc32_update(uint32_t crc, const void *data, size_t n) {
    static uint32_t table[256];
    static int ready = 0;
    if (!ready) { /* the reflected IEEE 802.3 polynomial, as zlib and PNG use */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int fail(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ckpt_write(const char *path, const ckpt_section *s, int n, char *err, size_t err_len) {
    if (n < 1 || n > CKPT_MAX_SECTIONS) return fail(err, err_len, "bad section count %d", n);
    unsigned char table[CKPT_MAX_SECTIONS * ENTRY_BYTES];
    memset(table, 0, sizeof table);
    uint64_t offset = HEADER_BYTES + (uint64_t)n * ENTRY_BYTES;
    for (int i = 0; i < n; i++) {
        unsigned char *e = table + i * ENTRY_BYTES;
        size_t nl = strlen(s[i].name);
        if (nl == 0 || nl >= CKPT_NAME_LEN) return fail(err, err_len, "bad section name '%s'", s[i].name);
        memcpy(e, s[i].name, nl);
        put_u64(e + CKPT_NAME_LEN, offset);
        put_u64(e + CKPT_NAME_LEN + 8, s[i].size);
        put_u32(e + CKPT_NAME_LEN + 16, crc32_update(0, s[i].data, s[i].size));
        offset += s[i].size;
    }
    unsigned char header[HEADER_BYTES];
    memcpy(header, MAGIC, 8);
    put_u32(header + 8, CKPT_VERSION);
    put_u32(header + 12, (uint32_t)n);
    put_u64(header + 16, offset);
    put_u32(header + 24, crc32_update(0, table, (size_t)n * ENTRY_BYTES));
    put_u32(header + 28, crc32_update(0, header, 28));

    char tmp[600];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return fail(err, err_len, "checkpoint path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail(err, err_len, "cannot create %s: %s", tmp, strerror(errno));
    int bad = write_all(fd, header, HEADER_BYTES) || write_all(fd, table, (size_t)n * ENTRY_BYTES);
    for (int i = 0; i < n && !bad; i++) bad = write_all(fd, s[i].data, s[i].size);
    if (!bad) bad = fsync(fd);
    int saved = errno;
    if (close(fd) && !bad) {
        bad = 1;
        saved = errno;
    }
    if (bad) {
        unlink(tmp);
        return fail(err, err_len, "writing %s failed: %s", tmp, strerror(saved));
    }
    if (rename(tmp, path)) {
        saved = errno;
        unlink(tmp);
        return fail(err, err_len, "cannot rename %s to %s: %s", tmp, path, strerror(saved));
    }
    /* Make the rename itself durable: fsync the directory that holds the file. */
    char dir[600];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int ckpt_open(ckpt_reader *r, const char *path, char *err, size_t err_len) {
    r->f = NULL;
    r->n = 0;
    snprintf(r->path, sizeof r->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, err_len, "cannot open checkpoint %s: %s", path, strerror(errno));
    if (fseeko(f, 0, SEEK_END)) {
        fclose(f);
        return fail(err, err_len, "%s: cannot seek", path);
    }
    uint64_t actual = (uint64_t)ftello(f);
    rewind(f);
    unsigned char header[HEADER_BYTES];
    if (actual < HEADER_BYTES || fread(header, 1, HEADER_BYTES, f) != HEADER_BYTES) {
        fclose(f);
        return fail(err, err_len, "%s: not an exitrl checkpoint (only %llu bytes)", path,
                    (unsigned long long)actual);
    }
    if (memcmp(header, MAGIC, 8)) {
        fclose(f);
        return fail(err, err_len, "%s: not an exitrl checkpoint (bad magic)", path);
    }
    if (get_u32(header + 28) != crc32_update(0, header, 28)) {
        fclose(f);
        return fail(err, err_len, "%s: header is corrupt (CRC mismatch)", path);
    }
    uint32_t version = get_u32(header + 8), n = get_u32(header + 12);
    uint64_t declared = get_u64(header + 16);
    if (version != CKPT_VERSION) {
        fclose(f);
        return fail(err, err_len, "%s: checkpoint version %u, this exitrl reads version %u", path,
                    version, CKPT_VERSION);
    }
    if (n < 1 || n > CKPT_MAX_SECTIONS) {
        fclose(f);
        return fail(err, err_len, "%s: absurd section count %u (max %d)", path, n, CKPT_MAX_SECTIONS);
    }
    if (declared != actual) {
        fclose(f);
        return fail(err, err_len, "%s: file is %llu bytes but its header says %llu (truncated or extended)",
                    path, (unsigned long long)actual, (unsigned long long)declared);
    }
    unsigned char table[CKPT_MAX_SECTIONS * ENTRY_BYTES];
    uint64_t table_end = HEADER_BYTES + (uint64_t)n * ENTRY_BYTES;
    if (table_end > actual || fread(table, 1, (size_t)n * ENTRY_BYTES, f) != (size_t)n * ENTRY_BYTES) {
        fclose(f);
        return fail(err, err_len, "%s: section table is truncated", path);
    }
    if (get_u32(header + 24) != crc32_update(0, table, (size_t)n * ENTRY_BYTES)) {
        fclose(f);
        return fail(err, err_len, "%s: section table is corrupt (CRC mismatch)", path);
    }
    uint64_t expected_offset = table_end;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = table + i * ENTRY_BYTES;
        ckpt_entry *c = &r->entries[i];
        memcpy(c->name, e, CKPT_NAME_LEN);
        c->offset = get_u64(e + CKPT_NAME_LEN);
        c->size = get_u64(e + CKPT_NAME_LEN + 8);
        c->crc = get_u32(e + CKPT_NAME_LEN + 16);
        /* A name is 1..23 bytes, NUL-padded, and names one section only; the reserved word is 0. */
        size_t nl = strnlen(c->name, CKPT_NAME_LEN);
        int padded = nl > 0 && nl < CKPT_NAME_LEN, unique = 1;
        for (size_t k = nl; k < CKPT_NAME_LEN && padded; k++) padded = c->name[k] == 0;
        c->name[CKPT_NAME_LEN - 1] = 0;
        for (uint32_t j = 0; j < i && padded; j++) unique &= strcmp(r->entries[j].name, c->name) != 0;
        if (!padded || !unique || get_u32(e + CKPT_NAME_LEN + 20) != 0) {
            fclose(f);
            return fail(err, err_len, "%s: section table entry %u: %s", path, i,
                        !padded ? "the name is not 1-23 bytes padded with NULs"
                        : !unique ? "a second section with the same name" : "reserved field not zero");
        }
        /* Sections follow the table and each other without gaps, the last ending the file. */
        if (c->offset > actual || c->size > actual - c->offset) {
            fclose(f);
            return fail(err, err_len, "%s: section '%s' lies outside the file", path, c->name);
        }
        if (c->offset != expected_offset || (i == n - 1 && c->offset + c->size != actual)) {
            fclose(f);
            return fail(err, err_len, "%s: section '%s' at offset %llu, size %llu: not where the table's layout "
                        "puts it (offset %llu, the last section ending the file)", path, c->name,
                        (unsigned long long)c->offset, (unsigned long long)c->size,
                        (unsigned long long)expected_offset);
        }
        expected_offset += c->size;
        /* Stream the section through a fixed buffer: no allocation sized by the file. */
        unsigned char buf[1 << 16];
        uint32_t crc = 0;
        uint64_t left = c->size;
        if (fseeko(f, (off_t)c->offset, SEEK_SET)) {
            fclose(f);
            return fail(err, err_len, "%s: cannot seek to section '%s'", path, c->name);
        }
        while (left) {
            size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
            if (fread(buf, 1, want, f) != want) {
                fclose(f);
                return fail(err, err_len, "%s: section '%s' is truncated", path, c->name);
            }
            crc = crc32_update(crc, buf, want);
            left -= want;
        }
        if (crc != c->crc) {
            fclose(f);
            return fail(err, err_len, "%s: section '%s' is corrupt (CRC mismatch)", path, c->name);
        }
    }
    r->f = f;
    r->n = n;
    return 0;
}

static const ckpt_entry *find(const ckpt_reader *r, const char *name) {
    for (uint32_t i = 0; i < r->n; i++)
        if (strcmp(r->entries[i].name, name) == 0) return &r->entries[i];
    return NULL;
}

int64_t ckpt_section_size(const ckpt_reader *r, const char *name) {
    const ckpt_entry *e = find(r, name);
    return e ? (int64_t)e->size : -1;
}

int ckpt_read(ckpt_reader *r, const char *name, void *dst, uint64_t expected, char *err, size_t err_len) {
    const ckpt_entry *e = find(r, name);
    if (!e) return fail(err, err_len, "%s: no section '%s'", r->path, name);
    if (e->size != expected)
        return fail(err, err_len, "%s: section '%s' is %llu bytes, expected %llu for this config",
                    r->path, name, (unsigned long long)e->size, (unsigned long long)expected);
    /* The CRC was checked at open; re-check while reading, in case the file changed since. */
    if (fseeko(r->f, (off_t)e->offset, SEEK_SET) || fread(dst, 1, expected, r->f) != expected)
        return fail(err, err_len, "%s: cannot read section '%s'", r->path, name);
    if (crc32_update(0, dst, expected) != e->crc)
        return fail(err, err_len, "%s: section '%s' changed since it was opened", r->path, name);
    return 0;
}

void ckpt_close(ckpt_reader *r) {
    if (r->f) fclose(r->f);
    r->f = NULL;
    r->n = 0;
}
