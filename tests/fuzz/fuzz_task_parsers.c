// libFuzzer target for every task domain's answer verifier (not part of ctest). Build and run
// from the repository root:
//   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Ihost host/tasks/*.c tests/fuzz/fuzz_task_parsers.c -o /tmp/fuzz_task_parsers && /tmp/fuzz_task_parsers -max_total_time=60
// Input: byte 0 picks the domain and its knobs (default/min/max), byte 1 the seed; the rest is
// the answer. Aborts on a reward outside [0,1] or an unterminated feedback; ASan catches reads
// past the answer. For ledger, the answer also runs through ledger_execute from the episode's
// initial state, with a results buffer of byte 1's size: aborts on an unknown return code, a
// state changed by a malformed or unfitting response, or unterminated results.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/ledger.h"
#include "tasks/task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const task_domain *d = task_domain_at(data[0] % task_domain_count());
    task_instance in = {.domain = d->id, .split = TASK_SPLIT_TRAIN, .seed = data[1]};
    task_knobs_default(d, in.knobs);
    for (int k = 0; k < d->n_knobs; k++)
        if (data[0] / 4 % 3 == 1) in.knobs[k] = d->knobs[k].min;
        else if (data[0] / 4 % 3 == 2) in.knobs[k] = d->knobs[k].max;
    char feedback[TASK_FEEDBACK_CAP];
    float s = d->score(&in, (const char *)data + 2, size - 2, feedback, sizeof feedback);
    if (!(s >= 0.0f && s <= 1.0f) || !memchr(feedback, 0, sizeof feedback)) abort();
    if (d->id == TASK_DOMAIN_LEDGER) {
        static ledger_episode ep;
        char results[LEDGER_RESULT_CAP];
        size_t cap = data[1] % (LEDGER_RESULT_CAP + 1);
        if (ledger_generate(&in, &ep)) abort();
        ledger_state st = ep.init;
        int rc = ledger_execute(&st, (const char *)data + 2, size - 2, results, cap);
        int unchanged = memcmp(&st, &ep.init, sizeof st) == 0;
        if (rc == LEDGER_ERR_MALFORMED || rc == TASK_ERR_FIT) {
            if (!unchanged) abort();
        } else if (rc < 0 || rc > LEDGER_MAX_CALLS || !ledger_state_valid(&st)) {
            abort();
        }
        if (cap && rc != TASK_ERR_FIT && !memchr(results, 0, cap)) abort();
    }
    return 0;
}
