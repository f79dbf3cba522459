/* Checkpoint container: a versioned header, a table of named sections and a CRC32 per section.
 *
 * Layout (little-endian):
 *   header  : magic "EXITRLCK" (8 bytes), u32 version, u32 n_sections, u64 file_size, u32 table_crc,
 *             u32 header_crc (CRC32 of the preceding 28 bytes)
 *   table   : n_sections x { char name[24] (NUL-padded), u64 offset, u64 size, u32 crc, u32 zero }
 *   payload : the sections' bytes, each at its offset
 * Writing goes to "<path>.tmp", is fsynced, then renamed over <path>, so a crash or kill at any
 * moment leaves either the old checkpoint or the new one, never a torn file.
 * Opening validates magic, version, file length, the table (names of 1-23 bytes, NUL-padded and
 * unique; reserved words zero; the sections laid out one after the other from the end of the
 * table to the end of the file, as the writer puts them) and every CRC (streamed through a fixed
 * buffer) before the caller allocates anything from a size in the file. */
#ifndef EXITRL_CHECKPOINT_H
#define EXITRL_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CKPT_VERSION 1
#define CKPT_MAX_SECTIONS 64
#define CKPT_NAME_LEN 24

typedef struct {
    const char *name;
    const void *data;
    uint64_t size;
} ckpt_section;

typedef struct {
    char name[CKPT_NAME_LEN];
    uint64_t offset, size;
    uint32_t crc;
} ckpt_entry;

typedef struct {
    FILE *f;
    char path[512];
    uint32_t n;
    ckpt_entry entries[CKPT_MAX_SECTIONS];
} ckpt_reader;

uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

/* Writes the sections atomically. Returns 0, or -1 with a reason in err. */
int ckpt_write(const char *path, const ckpt_section *sections, int n, char *err, size_t err_len);
/* Opens and fully validates a checkpoint. Returns 0, or -1 with a reason in err (file closed). */
int ckpt_open(ckpt_reader *r, const char *path, char *err, size_t err_len);
/* Size of a section, or -1 when the checkpoint has none of that name. */
int64_t ckpt_section_size(const ckpt_reader *r, const char *name);
/* Reads a section whose size must equal expected_size exactly. Returns 0, or -1 with a reason. */
int ckpt_read(ckpt_reader *r, const char *name, void *dst, uint64_t expected_size, char *err,
              size_t err_len);
void ckpt_close(ckpt_reader *r);
#endif
