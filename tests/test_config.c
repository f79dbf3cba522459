/* Config choice keys: every name parses into the enum value the code tests against (config.h's
 * enums and ops.h's EXITRL_SELECT_* / EXITRL_SCALE_*, listed in the same order as config.c's
 * table), comes back out by config_choice_name, and round-trips through the config text
 * (config_to_text, then config_load_file). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run/config.h"
#include "ops.h"
#include "tasks/task.h"
#include "test_util.h"

typedef struct {
    const char *key, *name;
    int value;
} choice_case;

static const choice_case cases[] = {
    {"method", "grpo", METHOD_GRPO},
    {"method", "curriculum", METHOD_CURRICULUM},
    {"method", "improve", METHOD_IMPROVE},
    {"method", "diverge", METHOD_DIVERGE},
    {"method", "exit", METHOD_EXIT},
    {"iter_reward", "absolute", ITER_REWARD_ABSOLUTE},
    {"iter_reward", "improvement", ITER_REWARD_IMPROVEMENT},
    {"iter_reward", "delta", ITER_REWARD_DELTA},
    {"loss_agg", "grpo", GRPO_AGG_GRPO},
    {"loss_agg", "dapo", GRPO_AGG_DAPO},
    {"loss_agg", "dr_grpo", GRPO_AGG_DR_GRPO},
    {"diversity_embed", "hidden", DIVERSITY_HIDDEN},
    {"diversity_embed", "ngram", DIVERSITY_NGRAM},
    {"insert", "all", EXITRL_SELECT_ALL},
    {"insert", "best", EXITRL_SELECT_BEST},
    {"insert", "random", EXITRL_SELECT_RANDOM},
    {"insert", "topk", EXITRL_SELECT_TOPK},
    {"scale_rewards", "group", EXITRL_SCALE_GROUP},
    {"scale_rewards", "batch", EXITRL_SCALE_BATCH},
    {"scale_rewards", "none", EXITRL_SCALE_NONE},
    {"demo_targets", "fresh", TASK_DEMO_FRESH},
    {"demo_targets", "improve", TASK_DEMO_IMPROVE},
};

static int field(const exitrl_config *c, const char *key) {
    if (!strcmp(key, "method")) return c->method;
    if (!strcmp(key, "iter_reward")) return c->iter_reward;
    if (!strcmp(key, "loss_agg")) return c->loss_agg;
    if (!strcmp(key, "diversity_embed")) return c->diversity_embed;
    if (!strcmp(key, "insert")) return c->insert;
    if (!strcmp(key, "demo_targets")) return c->demo_targets;
    return c->scale_rewards;
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const choice_case *k = &cases[i];
        exitrl_config c;
        config_defaults(&c);
        CHECK(config_set(&c, k->key, k->name, "test") == 0, "%s = %s rejected", k->key, k->name);
        CHECK(field(&c, k->key) == k->value, "%s = %s parsed to %d, expected %d", k->key, k->name,
              field(&c, k->key), k->value);
        CHECK(!strcmp(config_choice_name(k->key, k->value), k->name), "config_choice_name(%s, %d) = %s", k->key,
              k->value, config_choice_name(k->key, k->value));
        /* The text form (checkpoints and config.txt) carries the name, not the number. */
        size_t len = 0;
        char *text = config_to_text(&c, &len), want[64];
        snprintf(want, sizeof want, "\n%s = %s\n", k->key, k->name);
        CHECK(text && strstr(text, want), "config text lacks '%s = %s'", k->key, k->name);
        /* ... and reading that text back gives the same value */
        char path[] = "/tmp/test_config_XXXXXX";
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        exitrl_config back;
        config_defaults(&back);
        int rc = -1;
        if (f && text) {
            fwrite(text, 1, len, f);
            fclose(f);
            rc = config_load_file(&back, path);
        }
        if (fd >= 0) unlink(path);
        CHECK(rc == 0 && field(&back, k->key) == k->value, "%s = %s does not round-trip (rc %d, got %d)", k->key,
              k->name, rc, field(&back, k->key));
        free(text);
    }
    exitrl_config c;
    config_defaults(&c);
    CHECK(c.method == METHOD_EXIT && c.iter_reward == ITER_REWARD_ABSOLUTE && c.insert == EXITRL_SELECT_ALL &&
              c.demo_targets == TASK_DEMO_IMPROVE,
          "defaults: method %d iter_reward %d insert %d demo_targets %d", c.method, c.iter_reward, c.insert,
          c.demo_targets);
    CHECK(config_set(&c, "method", "exitt", "test") == 2, "an unknown choice is accepted");
    CHECK(config_set(&c, "method", "1", "test") == 2, "a choice given as its number is accepted");
    CHECK(!strcmp(config_choice_name("method", 5), "?"), "out-of-range value has a name");
    CHECK(!strcmp(config_choice_name("lr", 0), "?"), "a numeric key has choice names");
    const char *a = config_choice_name("method", METHOD_GRPO), *b = config_choice_name("method", METHOD_EXIT);
    CHECK(!strcmp(a, "grpo") && !strcmp(b, "exit"), "two names of one key at once: %s %s", a, b);

    /* config_load_text: the file parser on bytes; a control byte, a NUL or an overlong line is an error. */
    static const char good[] = "lr = 0.002\n\n# comment\nmethod = grpo\r\niterations = 7";
    config_defaults(&c);
    CHECK(config_load_text(&c, good, sizeof good - 1, "text") == 0 && c.lr == 0.002 && c.method == METHOD_GRPO &&
              c.iterations == 7, "text config not applied");
    const char nul[] = "lr = 0.1\0\nsteps = 3\n", ctl[] = "lr = 0.1\x01\n";
    CHECK(config_load_text(&c, nul, sizeof nul - 1, "text") == 2, "a NUL byte is accepted");
    CHECK(config_load_text(&c, ctl, sizeof ctl - 1, "text") == 2, "a control byte is accepted");
    char longline[1100];
    memset(longline, ' ', sizeof longline);
    memcpy(longline, "lr = 0.1", 8);
    CHECK(config_load_text(&c, longline, sizeof longline, "text") == 2, "a 1100-byte line is accepted");

    /* config_resume: the saved run wins; overridable keys take the command line's value, init and
     * resume always do, any other given key must be equal. */
    exitrl_config saved, cli;
    config_defaults(&saved);
    config_set(&saved, "lr", "0.005", "saved");
    config_set(&saved, "iterations", "50", "saved");
    config_set(&saved, "init", "warm.bin", "saved");
    config_defaults(&cli);
    config_set(&cli, "iterations", "80", "cli");
    config_set(&cli, "resume", "run.bin", "cli");
    config_set(&cli, "lr", "0.005", "cli"); /* given, but equal */
    CHECK(config_resume(&cli, &saved, "run.bin") == 0, "a valid resume rejected");
    CHECK(cli.lr == 0.005 && cli.iterations == 80 && !strcmp(cli.resume, "run.bin") && !cli.init[0],
          "resume merge: lr %g iterations %d resume '%s' init '%s'", cli.lr, cli.iterations, cli.resume, cli.init);
    config_defaults(&cli);
    config_set(&cli, "kl_beta", "0.5", "cli");
    CHECK(config_resume(&cli, &saved, "run.bin") == 2 && cli.kl_beta == 0.5, "a changed kl_beta is accepted");
    return test_finish("test_config");
}
