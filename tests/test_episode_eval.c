/* The multi-turn evaluation (eval/episode_eval.h) on a small random policy and ledger episodes:
 * turn 0's figures at every step equal the single-turn protocol's (task_eval_steps: the same
 * prompts, random numbers and verifier, computed by the other code path), the return and turns
 * solved are consistent, the run is deterministic, and an episode too long for the context is an
 * error naming it, not a truncation. */
#include <string.h>

#include "eval/episode_eval.h"
#include "eval/task_eval.h"
#include "model/tokenizer.h"
#include "test_util.h"

/* A model with a context long enough for 3 turns of a random policy's answers. */
static gpt_config CFG = {2, 2, 32, 256, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};

int main(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    gpt_model m;
    CHECK(gpt_create(&m, be, &CFG, 1, 8) == 0, "create");
    gpt_init_random(&m, 7);
    const task_domain *d = task_domain_find("ledger");
    int32_t knobs[TASK_MAX_KNOBS];
    char why[160];
    CHECK(task_knobs_parse(d, "turns=3,tools=1,accounts=2", knobs, why, sizeof why) == 0, "%s", why);
    /* Short answers keep the random policy's history within the context. */
    task_eval_options o = {.n_instances = 12, .n_samples = 2, .K = 2, .max_new = 12, .feedback = 1,
                           .temperature = 1.0f, .seed = 5, .show = 1, .show_to = stdout};
    task_eval_episodes_result ep, again;
    CHECK(task_eval_episodes(d, knobs, &m, &o, &ep) == 0, "episode evaluation");
    CHECK(ep.K == 2 && ep.turns == 3, "K %d turns %d", ep.K, ep.turns);

    /* Turn 0 is the single-turn protocol (its knobs: one turn, the same first turns). */
    int32_t one[TASK_MAX_KNOBS];
    memcpy(one, knobs, sizeof one);
    CHECK(task_knobs_parse(d, "turns=1,tools=1,accounts=2", one, why, sizeof why) == 0, "%s", why);
    task_eval_options os = o;
    os.show = 0;
    task_eval_steps_result st;
    CHECK(task_eval_steps(d, one, &m, &os, &st) == 0, "single-turn evaluation");
    for (int k = 0; k <= o.K; k++)
        CHECK(ep.first_score[k] == st.score[k] && ep.first_solved[k] == st.solved[k] &&
                  ep.first_se[k] == st.score_se[k],
              "step %d: first turn %.6f / %.6f, single-turn protocol %.6f / %.6f", k, ep.first_score[k],
              ep.first_solved[k], st.score[k], st.solved[k]);
    for (int k = 1; k <= o.K; k++)
        CHECK(ep.right_wrong[k] == st.right_wrong[k] && ep.wrong_right[k] == st.wrong_right[k] &&
                  ep.improved[k] == st.improved[k] && ep.worse[k] == st.worse[k] && ep.copy_rate[k] == st.copy_rate[k],
              "step %d: turn 0's transitions differ from the single-turn protocol's", k);
    task_eval_steps_free(&st);

    /* Returns: within [turns solved, turns], and deterministic. */
    for (int k = 0; k <= o.K; k++)
        CHECK(ep.ret[k] >= ep.turns_solved[k] - 1e-9 && ep.ret[k] <= ep.turns + 1e-9 && ep.turns_solved[k] >= 0 &&
                  ep.valid[k] >= 0 && ep.valid[k] <= 1 && ep.ret_se[k] >= 0,
              "step %d: return %.4f, turns solved %.4f, valid %.4f", k, ep.ret[k], ep.turns_solved[k], ep.valid[k]);
    o.show = 0;
    CHECK(task_eval_episodes(d, knobs, &m, &o, &again) == 0, "again");
    int same = 1;
    for (int k = 0; k <= o.K; k++)
        same &= ep.ret[k] == again.ret[k] && ep.turns_solved[k] == again.turns_solved[k] &&
                ep.first_score[k] == again.first_score[k];
    CHECK(same, "two runs with one seed differ");
    task_eval_episodes_free(&again);
    task_eval_episodes_free(&ep);

    /* Episodes longer than the context: an error, nothing truncated. */
    CHECK(task_knobs_parse(d, "turns=60,tools=1,accounts=2", knobs, why, sizeof why) == 0, "%s", why);
    o.K = 0;
    CHECK(task_eval_episodes(d, knobs, &m, &o, &ep) == -1, "60 turns fit a 256-token context?");
    /* A single-turn domain has no episodes. */
    int32_t kk[TASK_MAX_KNOBS];
    task_knobs_default(task_domain_find("arith"), kk);
    CHECK(task_eval_episodes(task_domain_find("arith"), kk, &m, &o, &ep) == -1, "arith has no episodes");
    gpt_destroy(&m);
    be->destroy(be);
    return test_finish("test_episode_eval");
}
