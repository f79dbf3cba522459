// libFuzzer target for the config parser (config_load_text: config files and a checkpoint's
// run_config section). Built and run by tests/fuzz/run.sh (not part of ctest).
// Input: any bytes, as config text. Aborts when text the parser accepted does not round-trip:
// config_to_text of the result must parse again and give the same text.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    exitrl_config c, back;
    config_defaults(&c);
    if (config_load_text(&c, (const char *)data, size, "fuzz")) return 0;
    size_t n1 = 0, n2 = 0;
    char *t1 = config_to_text(&c, &n1);
    config_defaults(&back);
    if (!t1 || config_load_text(&back, t1, n1, "round trip")) abort();
    char *t2 = config_to_text(&back, &n2);
    if (!t2 || n1 != n2 || memcmp(t1, t2, n1)) abort();
    free(t1);
    free(t2);
    return 0;
}
