/* The preamble every command shares (contract in commands.h). */
#include "cli/commands.h"

#include <stdlib.h>

#include "dist/dist.h"

int command_config(int argc, char **argv, void (*usage)(FILE *f), exitrl_config *cfg) {
    if (config_wants_help(argc, argv)) {
        usage(stdout);
        return -1;
    }
    config_defaults(cfg);
    int rc = config_parse_args(cfg, argc, argv);
    if (rc || dist_size() == 1) return rc;
    /* Ranks of one MPI job must run the same command with the same configuration. */
    size_t len = 0;
    char *text = config_to_text(cfg, &len);
    if (!text) {
        fprintf(stderr, "exitrl: out of memory\n");
        return 1;
    }
    rc = dist_check_same(text, len, "the configuration (config file, command line)");
    free(text);
    return rc ? 2 : 0;
}

int command_config_error(int rc, const exitrl_config *cfg) {
    if (rc != 2 || !cfg->resume[0]) return rc;
    fprintf(stderr, "exitrl: that configuration comes from %s: section 'run_config'\n", cfg->resume);
    return 1;
}
