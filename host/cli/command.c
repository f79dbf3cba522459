/* The preamble every command shares (contract in commands.h). */
#include "cli/commands.h"

int command_config(int argc, char **argv, void (*usage)(FILE *f), exitrl_config *cfg) {
    if (config_wants_help(argc, argv)) {
        usage(stdout);
        return -1;
    }
    config_defaults(cfg);
    return config_parse_args(cfg, argc, argv);
}

int command_config_error(int rc, const exitrl_config *cfg) {
    if (rc != 2 || !cfg->resume[0]) return rc;
    fprintf(stderr, "exitrl: that configuration comes from %s: section 'run_config'\n", cfg->resume);
    return 1;
}
