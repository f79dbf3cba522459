/* The registry, knob parsing, instance validation, and the train/held-out partition: disjoint over
 * 100k draws of each split (also where the knobs allow only a few hundred problems), the held-out
 * share near 1/16, and draws deterministic and random-access. */
#include <stdlib.h>
#include <string.h>

#include "tasks/task.h"
#include "test_util.h"

static void test_registry(void) {
    CHECK(task_domain_count() == 4, "count %d", task_domain_count());
    const char *names[] = {"arith", "countdown", "knapsack", "ledger"};
    for (int i = 0; i < 4; i++) {
        const task_domain *d = task_domain_find(names[i]);
        CHECK(d && strcmp(d->name, names[i]) == 0, "find %s", names[i]);
        CHECK(d && task_domain_by_id(d->id) == d, "by_id %s", names[i]);
        CHECK(task_domain_at(i) && strcmp(task_domain_at(i)->name, names[i]) == 0, "at %d", i);
    }
    CHECK(task_domain_find("Arith") == NULL && task_domain_find("") == NULL &&
              task_domain_find(NULL) == NULL,
          "unknown names");
    CHECK(task_domain_by_id(0) == NULL && task_domain_by_id(99) == NULL, "unknown ids");
    CHECK(task_domain_at(-1) == NULL && task_domain_at(4) == NULL, "out of range");
}

static void test_knobs(void) {
    const task_domain *d = task_domain_find("arith");
    int32_t k[TASK_MAX_KNOBS];
    char why[160];
    CHECK(task_knobs_parse(d, "", k, why, sizeof why) == 0 && k[0] == 2 && k[1] == 9 && k[2] == 0,
          "defaults");
    CHECK(task_knobs_parse(d, "ops=3, max = 20", k, why, sizeof why) == 0 && k[0] == 3 && k[1] == 20,
          "%s", why);
    CHECK(task_knobs_parse(d, "max=50", k, why, sizeof why) == 0 && k[0] == 2 && k[1] == 50,
          "unnamed knobs keep their defaults");
    CHECK(task_knobs_parse(d, "ops=9", k, why, sizeof why) == -1 && strstr(why, "ops") &&
              strstr(why, "[1, 8]"),
          "%s", why);
    CHECK(task_knobs_parse(d, "depth=3", k, why, sizeof why) == -1 && strstr(why, "depth"), "%s", why);
    CHECK(task_knobs_parse(d, "ops=x", k, why, sizeof why) == -1 && strstr(why, "integer"), "%s", why);
    CHECK(task_knobs_parse(d, "ops=3x", k, why, sizeof why) == -1, "trailing garbage");
    CHECK(task_knobs_parse(d, "ops", k, why, sizeof why) == -1 && strstr(why, "name=value"), "%s", why);
    CHECK(task_knobs_parse(d, "ops=99999999999999999999", k, why, sizeof why) == -1, "huge value");
    const task_domain *ks = task_domain_find("knapsack");
    CHECK(task_knobs_parse(ks, "n=12,cap_pct=30", k, why, sizeof why) == 0 && k[0] == 12 && k[3] == 30,
          "%s", why);
    int32_t bad[TASK_MAX_KNOBS] = {2, 9, 0, 7};
    CHECK(task_knobs_check(d, bad, why, sizeof why) == -1 && strstr(why, "unused"), "%s", why);
}

typedef struct {
    char **text;
    int n;
} request_set;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Draws n instances of a split and records their request texts, sorted. */
static int draw_requests(const task_domain *d, const int32_t *knobs, int split, int n,
                         request_set *out) {
    out->text = malloc(sizeof(char *) * (size_t)n);
    out->n = n;
    char why[200];
    int wrong_split = 0;
    for (int i = 0; i < n; i++) {
        task_instance in;
        if (task_draw(d, knobs, split, 1234, (uint64_t)i, &in, why, sizeof why)) {
            CHECK(0, "%s", why);
            out->n = i;
            return -1;
        }
        char req[TASK_REQUEST_CAP];
        d->render_request(&in, req, sizeof req);
        size_t len = strlen(req) + 1;
        out->text[i] = malloc(len);
        memcpy(out->text[i], req, len);
        wrong_split += in.split != (uint32_t)split || task_content_split(d, &in) != split ||
                       task_instance_check(&in, why, sizeof why) != 0;
    }
    CHECK(wrong_split == 0, "%s: %d instances not in the split they were drawn for", d->name,
          wrong_split);
    qsort(out->text, (size_t)n, sizeof(char *), cmp_str);
    return 0;
}

static int count_distinct(const request_set *s) {
    int k = s->n > 0;
    for (int i = 1; i < s->n; i++) k += strcmp(s->text[i - 1], s->text[i]) != 0;
    return k;
}

static int count_shared(const request_set *a, const request_set *b) {
    int i = 0, j = 0, shared = 0;
    while (i < a->n && j < b->n) {
        int c = strcmp(a->text[i], b->text[j]);
        if (c == 0) {
            shared++;
            i++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    return shared;
}

static void free_set(request_set *s) {
    for (int i = 0; i < s->n; i++) free(s->text[i]);
    free(s->text);
}

static void test_disjoint(const char *name, const char *spec, int min_distinct_heldout) {
    const task_domain *d = task_domain_find(name);
    int32_t k[TASK_MAX_KNOBS];
    char why[160];
    CHECK(task_knobs_parse(d, spec, k, why, sizeof why) == 0, "%s", why);
    const int N = 100000;
    request_set train, heldout;
    if (draw_requests(d, k, TASK_SPLIT_TRAIN, N, &train) ||
        draw_requests(d, k, TASK_SPLIT_HELDOUT, N, &heldout))
        return;
    int shared = count_shared(&train, &heldout);
    int dt = count_distinct(&train), dh = count_distinct(&heldout);
    printf("%s %s: %d train draws (%d distinct), %d held-out draws (%d distinct), %d shared\n", name,
           spec, N, dt, N, dh, shared);
    CHECK(shared == 0, "%s %s: %d held-out problems also drawn for training", name, spec, shared);
    CHECK(dh >= min_distinct_heldout, "%s: only %d distinct held-out problems", name, dh);
    free_set(&train);
    free_set(&heldout);
}

/* Over uniformly random seeds, about 1/16 of the problems are held-out. */
static void test_heldout_share(void) {
    task_rng r = task_rng_seeded(77);
    for (int di = 0; di < task_domain_count(); di++) {
        const task_domain *d = task_domain_at(di);
        task_instance in = {.domain = d->id};
        task_knobs_default(d, in.knobs);
        const int N = 64000;
        int held = 0;
        for (int i = 0; i < N; i++) {
            in.seed = task_rng_next(&r);
            held += task_content_split(d, &in) == TASK_SPLIT_HELDOUT;
        }
        double share = (double)held / N; /* 1/16 = 0.0625, sd ~0.001 */
        CHECK(fabs(share - 1.0 / TASK_HELDOUT_MODULUS) < 0.006, "%s held-out share %.4f", d->name,
              share);
    }
}

static void test_draw_determinism_and_checks(void) {
    const task_domain *d = task_domain_find("countdown");
    int32_t k[TASK_MAX_KNOBS];
    task_knobs_default(d, k);
    char why[200];
    task_instance a, b, c;
    CHECK(task_draw(d, k, TASK_SPLIT_HELDOUT, 9, 41, &a, why, sizeof why) == 0, "%s", why);
    task_draw(d, k, TASK_SPLIT_TRAIN, 9, 3, &c, why, sizeof why); /* an unrelated draw between */
    CHECK(task_draw(d, k, TASK_SPLIT_HELDOUT, 9, 41, &b, why, sizeof why) == 0, "%s", why);
    CHECK(memcmp(&a, &b, sizeof a) == 0, "the same (stream, split, index) gives the same instance");
    CHECK(task_draw(d, k, TASK_SPLIT_HELDOUT, 10, 41, &c, why, sizeof why) == 0 && c.seed != a.seed,
          "another stream gives another instance");
    CHECK(task_draw(d, k, TASK_SPLIT_HELDOUT, 9, 42, &c, why, sizeof why) == 0 && c.seed != a.seed,
          "another index gives another instance");
    CHECK(task_draw(d, k, 2, 9, 42, &c, why, sizeof why) == -1 && strstr(why, "split"), "%s", why);
    int32_t bad[TASK_MAX_KNOBS] = {9, 25, 999, 0};
    CHECK(task_draw(d, bad, TASK_SPLIT_TRAIN, 9, 42, &c, why, sizeof why) == -1 && strstr(why, "n"),
          "%s", why);

    CHECK(task_instance_check(&a, why, sizeof why) == 0, "%s", why);
    task_instance x = a;
    x.split = TASK_SPLIT_TRAIN;
    CHECK(task_instance_check(&x, why, sizeof why) == -1 && strstr(why, "held-out"), "%s", why);
    x = a;
    x.split = 7;
    CHECK(task_instance_check(&x, why, sizeof why) == -1 && strstr(why, "split"), "%s", why);
    x = a;
    x.domain = 42;
    CHECK(task_instance_check(&x, why, sizeof why) == -1 && strstr(why, "domain"), "%s", why);
    x = a;
    x.knobs[1] = 1000;
    CHECK(task_instance_check(&x, why, sizeof why) == -1 && strstr(why, "max"), "%s", why);

    /* knobs that allow very few problems: arith ops=1 max=1 has 12 ("0+0=" .. "1*1="); the draw
     * either finds one of the split or says why, it never loops forever */
    const task_domain *ar = task_domain_find("arith");
    int32_t tiny[TASK_MAX_KNOBS] = {1, 1, 0, 0};
    int found = 0, refused = 0;
    for (int s = 0; s < TASK_HELDOUT_MODULUS; s++) {
        int rc = task_draw(ar, tiny, TASK_SPLIT_HELDOUT, (uint64_t)s, 0, &c, why, sizeof why);
        found += rc == 0;
        refused += rc == -1 && strstr(why, "too few") != NULL;
    }
    CHECK(found + refused == TASK_HELDOUT_MODULUS, "every tiny draw succeeds or explains");
    CHECK(found == 0 || found == TASK_HELDOUT_MODULUS, "the answer does not depend on the stream");
}

int main(void) {
    test_registry();
    test_knobs();
    test_heldout_share();
    test_draw_determinism_and_checks();
    test_disjoint("arith", "", 50);
    test_disjoint("arith", "ops=1,max=9", 5); /* 300 possible problems in all */
    test_disjoint("countdown", "", 1000);
    test_disjoint("countdown", "n=2,max=5", 1); /* a few dozen possible problems */
    test_disjoint("knapsack", "", 1000);
    test_disjoint("ledger", "", 1000); /* partitioned by the first turn (initial state + request) */
    test_disjoint("ledger", "accounts=2,tools=1", 500);
    return test_finish("test_tasks_splits");
}
