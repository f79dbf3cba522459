/* The format check behind pretrain's format-valid rate: right and wrong answers in the domain's
 * format are well-formed, garbage is not, and invalid instances are reported. */
#include <string.h>

#include "tasks/task.h"
#include "test_util.h"

static void expect(const char *domain, const char *answer, int want) {
    const task_domain *d = task_domain_find(domain);
    int32_t knobs[TASK_MAX_KNOBS];
    task_knobs_default(d, knobs);
    task_instance inst;
    char why[160];
    CHECK(task_draw(d, knobs, TASK_SPLIT_TRAIN, 1, 0, &inst, why, sizeof why) == 0, "%s", why);
    int got = d->well_formed(&inst, answer, strlen(answer));
    CHECK(got == want, "%s '%s': well_formed %d, want %d", domain, answer, got, want);
}

int main(void) {
    expect("arith", "-17", 1);
    expect("arith", " 42 ", 1);
    expect("arith", "4 2", 0);
    expect("arith", "x", 0);
    expect("arith", "", 0);
    expect("countdown", "(50-25)*7", 1);
    expect("countdown", "1/0", 1);      /* parses; the score handles division by zero */
    expect("countdown", "5*", 0);
    expect("countdown", "hello", 0);
    expect("knapsack", "0 2", 1);
    expect("knapsack", "", 1);          /* the empty selection is a valid answer */
    expect("knapsack", "0 0", 0);       /* repeated index */
    expect("knapsack", "99", 0);        /* out of range */
    expect("knapsack", "0,2", 0);
    expect("ledger", "add a 5", 1);
    expect("ledger", " mov a c 4 ; get b\n", 1);
    expect("ledger", "add z 5", 1);      /* an unknown account parses; the score reports the error */
    expect("ledger", "sub a 999", 1);    /* insufficient funds is an error at execution, not syntax */
    expect("ledger", "add a 0", 0);      /* amounts are 1..999 */
    expect("ledger", "add a 5;", 0);     /* an empty call */
    expect("ledger", "deposit 5 to a", 0);
    expect("ledger", "", 0);
    task_instance bad = {0};
    bad.domain = TASK_DOMAIN_ARITH;     /* knobs all zero: out of range */
    CHECK(task_arith.well_formed(&bad, "1", 1) == -1, "invalid instance not reported");
    return test_finish("test_tasks_well_formed");
}
