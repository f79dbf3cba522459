// libFuzzer target for the task buffer's deserializer (the exit_buffer checkpoint section). Built
// and run by tests/fuzz/run.sh (not part of ctest).
// Input: byte 0 picks the configured capacity (1..64), the rest is the section's bytes. A buffer
// the deserializer accepts must then work: sampling, prefixes and an insertion stay in bounds
// (ASan), and it serialises back to the same bytes and deserialises again; else abort.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rl/task_buffer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    task_buffer_options o;
    task_buffer_options_default(&o);
    o.capacity = 1 + data[0] % 64;
    o.min_size = 0;
    o.priority = data[0] & 64 ? BUFFER_PRIORITY_RANK : BUFFER_PRIORITY_SOFTMAX;
    o.staleness = data[0] & 128 ? 0.5f : 0.0f;
    task_buffer b;
    char why[256];
    if (task_buffer_init(&b, &o, why, sizeof why)) abort();
    if (task_buffer_deserialize(&b, data + 1, size - 1, why, sizeof why)) {
        task_buffer_free(&b);
        return 0;
    }
    size_t n = task_buffer_serialized_size(&b);
    unsigned char *copy = malloc(n);
    if (!copy || n != size - 1 || task_buffer_serialize(&b, copy, n) != n || memcmp(copy, data + 1, n)) abort();
    rng_state rng;
    rng_seed(&rng, size);
    task_buffer_stats st;
    task_buffer_get_stats(&b, &st);
    if (b.size > 0) {
        uint64_t it = b.clock + 1;
        for (int k = 0; k < 4; k++) {
            int i = task_buffer_sample(&b, &rng, it);
            int keep = task_buffer_prefix(&b, i, &rng);
            buffer_entry e;
            if (i < 0 || keep < 0 || task_buffer_copy_prefix(&b, i, keep, &e)) abort();
            if (e.depth < BUFFER_MAX_DEPTH && buffer_entry_append(&e, "1", 1, 0.5f, "fb", 2, why, sizeof why)) abort();
            e.score = 0.5f;
            int rc = task_buffer_insert(&b, &e, it, why, sizeof why);
            if (rc < BUFFER_INSERT_REJECTED) abort(); /* a valid entry at a valid iteration */
        }
    }
    n = task_buffer_serialized_size(&b);
    unsigned char *again = realloc(copy, n);
    if (!again || task_buffer_serialize(&b, again, n) != n || task_buffer_deserialize(&b, again, n, why, sizeof why))
        abort();
    free(again);
    task_buffer_free(&b);
    return 0;
}
