/* rl/transitions: byte edit distance against hand-computed values, and the transition counts of
 * hand-made attempt pairs (right = reward 1). */
#include <string.h>

#include "rl/transitions.h"
#include "test_util.h"

static size_t ed(const char *a, const char *b) { return edit_distance(a, strlen(a), b, strlen(b)); }

int main(void) {
    CHECK(ed("kitten", "sitting") == 3, "kitten/sitting = %zu", ed("kitten", "sitting"));
    CHECK(ed("", "abc") == 3 && ed("abc", "") == 3, "empty side");
    CHECK(ed("1+2*3", "1+2*3") == 0, "identical");
    CHECK(ed("ab", "ba") == 2, "a swap is two edits: %zu", ed("ab", "ba"));
    CHECK(ed("(1+2)*3", "1+2*3") == 2, "two deletions: %zu", ed("(1+2)*3", "1+2*3"));
    char long_a[1500], long_b[1400];
    memset(long_a, 'x', sizeof long_a);
    memset(long_b, 'x', sizeof long_b);
    CHECK(edit_distance(long_a, sizeof long_a, long_b, sizeof long_b) == 476, "long inputs: the documented upper bound 476 (the true distance is 100): %zu",
          edit_distance(long_a, sizeof long_a, long_b, sizeof long_b));

    transition_stats s = {0};
    transition_add(&s, "7", 1, 1.0f, "7", 1, 1.0f);         /* right -> right, a copy */
    transition_add(&s, "7", 1, 1.0f, "8", 1, 0.0f);         /* right -> wrong */
    transition_add(&s, "8", 1, 0.0f, "7", 1, 1.0f);         /* wrong -> right */
    transition_add(&s, "9", 1, 0.25f, "19", 2, 0.5f);       /* wrong -> wrong, graded up */
    transition_add(&s, "9", 1, 0.5f, "9", 1, 0.5f);         /* wrong -> wrong, unchanged copy */
    CHECK(s.n == 5, "n = %ld", s.n);
    CHECK(s.right_right == 1 && s.right_wrong == 1 && s.wrong_right == 1 && s.wrong_wrong == 2,
          "RR %ld RW %ld WR %ld WW %ld", s.right_right, s.right_wrong, s.wrong_right, s.wrong_wrong);
    CHECK(s.improved == 2 && s.worse == 1 && s.unchanged == 2, "up %ld down %ld same %ld", s.improved, s.worse,
          s.unchanged);
    CHECK(s.copies == 2, "copies %ld", s.copies);
    CHECK(s.edit_sum == 3.0, "edit sum %g", s.edit_sum);
    CHECK(transition_share(&s, s.copies) == 0.4, "copy share %g", transition_share(&s, s.copies));
    transition_stats empty = {0};
    CHECK(transition_share(&empty, 0) == 0.0, "share of nothing");
    return test_finish("test_transitions");
}
