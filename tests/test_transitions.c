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

    char cls[TRANSITION_CLASS_CAP];
    feedback_class("weight 20 over capacity 17", cls, sizeof cls);
    CHECK(!strcmp(cls, "weight # over capacity #"), "class '%s'", cls);
    feedback_class("value -3, 12 below target", cls, sizeof cls);
    CHECK(!strcmp(cls, "value -#, # below target"), "class '%s'", cls);
    feedback_class("", cls, sizeof cls);
    CHECK(!strcmp(cls, "(none)"), "empty feedback: '%s'", cls);
    feedback_class("say \"hi\"\n", cls, sizeof cls);
    CHECK(!strcmp(cls, "say ?hi??"), "quotes and control bytes: '%s'", cls);
    feedback_class("0123456789 abcdef", cls, 5);
    CHECK(!strcmp(cls, "# ab"), "cut to cap - 1 bytes: '%s'", cls);

    static transition_classes c; /* zero */
    transition_classes_add(&c, "weight 9/10 value 30 optimal", "0 1", 3, 1.0f, "0 1", 3, 1.0f);
    transition_classes_add(&c, "weight 12 over capacity 10", "0 1 2", 5, 0.0f, "0 1", 3, 1.0f);
    transition_classes_add(&c, "weight 8/10 value 30 optimal", "1 2", 3, 1.0f, "1", 1, 0.4f);
    CHECK(c.n_classes == 2, "two classes: %d", c.n_classes);
    CHECK(c.stats[0].n == 2 && c.stats[0].copies == 1 && c.stats[0].right_wrong == 1, "optimal: n %ld copies %ld RW %ld",
          c.stats[0].n, c.stats[0].copies, c.stats[0].right_wrong);
    CHECK(c.stats[1].n == 1 && c.stats[1].wrong_right == 1, "over capacity: n %ld WR %ld", c.stats[1].n,
          c.stats[1].wrong_right);
    char fb[32];
    for (int i = 0; i < 20; i++) { /* 20 more classes: the last slot pools all but the first ones */
        snprintf(fb, sizeof fb, "class %c", 'a' + i);
        transition_classes_add(&c, fb, "x", 1, 0.0f, "y", 1, 0.0f);
    }
    CHECK(c.n_classes == TRANSITION_MAX_CLASSES, "classes capped: %d", c.n_classes);
    CHECK(!strcmp(c.name[TRANSITION_MAX_CLASSES - 1], "other"), "last class '%s'", c.name[TRANSITION_MAX_CLASSES - 1]);
    CHECK(c.stats[TRANSITION_MAX_CLASSES - 1].n == 20 - (TRANSITION_MAX_CLASSES - 3), "other holds the rest: %ld",
          c.stats[TRANSITION_MAX_CLASSES - 1].n);
    return test_finish("test_transitions");
}
