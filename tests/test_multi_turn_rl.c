/* ExIt on multi-turn episodes (rl/trainer.h; ledger, 3 turns, a small random policy): the buffer holds
 * tasks at every turn, each entry's earlier answers replay from the initial state to the rewards
 * they were stored with (and its attempts at its turn score as stored from the state they leave),
 * and every inserted expansion is played on to the end of its episode: one partial history per
 * later turn enters the buffer. */
#include <string.h>

#include "rl/trainer.h"
#include "run/config.h"
#include "run/setup.h"
#include "test_util.h"

int main(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    exitrl_config cfg;
    config_defaults(&cfg);
    const char *kv[][2] = {{"model", "tiny"}, {"n_layer", "1"}, {"d_model", "32"}, {"max_seq", "256"},
                           {"task", "ledger"}, {"task_knobs", "turns=3,tools=1,accounts=2"}, {"feedback", "1"},
                           {"method", "exit"}, {"prompts", "4"}, {"group_size", "4"}, {"max_new_tokens", "8"},
                           {"buffer_capacity", "1024"}, {"buffer_min", "4"}, {"p_replay", "1"}, {"p_diverge", "0.3"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        CHECK(config_set(&cfg, kv[i][0], kv[i][1], "test") == 0, "config %s", kv[i][0]);
    gpt_config mc;
    CHECK(setup_model_config(&cfg, &mc) == 0, "model config");
    int rows, T;
    rl_model_capacity(&cfg, mc.max_seq, &rows, &T);
    gpt_model m;
    CHECK(gpt_create(&m, be, &mc, rows, T) == 0, "create");
    gpt_init_random(&m, 3);
    rl_trainer t;
    CHECK(rl_trainer_init(&t, &cfg, &m) == 0, "trainer");
    CHECK(t.turns == 3, "turns %d", t.turns);
    int run_on = 0, later_slots = 0;
    for (int it = 0; it < 5; it++) {
        rl_iter_stats st;
        CHECK(rl_iteration(&t, (uint64_t)it, &st) == 0, "iteration %d", it);
        /* Every inserted expansion at turn u is played on through turns u+1..2: one entry each
         * (the buffer is large enough that nothing is rejected). */
        int expected = 0;
        for (int s = 0; s < t.n_prompts; s++)
            for (int j = 0; j < t.group_size; j++)
                if (t.chosen[s * t.group_size + j] && t.slots[s].task.depth < BUFFER_MAX_DEPTH)
                    expected += t.turns - 1 - t.slots[s].task.turn;
        CHECK(st.rejected == 0 && st.run_on + st.run_on_stopped == expected,
              "iteration %d: %d played on + %d stopped, want %d (rejected %d)", it, st.run_on, st.run_on_stopped, expected,
              st.rejected);
        run_on += st.run_on;
        for (int s = 0; s < t.n_prompts; s++) later_slots += t.slots[s].task.turn > 0;
    }
    CHECK(run_on > 0 && later_slots > 0, "played on %d, slots at later turns %d", run_on, later_slots);

    /* Every entry replays: earlier answers and attempts at its turn score as stored. */
    const task_episode *E = t.domain->episode;
    int by_turn[3] = {0}, bad = 0;
    char why[160];
    for (int i = 0; i < t.buffer.size; i++) {
        const buffer_entry *e = task_buffer_entry(&t.buffer, i);
        CHECK(buffer_entry_check(e, why, sizeof why) == 0, "entry %d: %s", i, why);
        if (e->turn < 0 || e->turn > 2) {
            bad++;
            continue;
        }
        by_turn[e->turn]++;
        unsigned char state[TASK_STATE_CAP], next[TASK_STATE_CAP];
        E->initial_state(&e->task, state);
        for (int k = 0; k < e->depth; k++) {
            const buffer_attempt *a = &e->history[k];
            int turn = k < e->turn ? k : e->turn;
            char answer[BUFFER_ANSWER_CAP + 1];
            memcpy(answer, a->answer, a->answer_len);
            answer[a->answer_len] = 0;
            /* stored attempts are the raw bytes; a malformed completion was stored with reward 0 */
            float r = E->score_turn(&e->task, turn, state, answer, a->answer_len, next, NULL, 0, NULL, 0);
            bad += !(r == a->reward || a->reward == 0.0f);
            if (k < e->turn) memcpy(state, next, sizeof state);
        }
    }
    printf("buffer: %d entries, at turns 0/1/2: %d %d %d; played on %d\n", t.buffer.size, by_turn[0], by_turn[1],
           by_turn[2], run_on);
    CHECK(bad == 0, "%d entries or attempts that do not replay as stored", bad);
    CHECK(by_turn[1] > 0 && by_turn[2] > 0, "no partial histories at turns 1 and 2");
    rl_trainer_free(&t);
    gpt_destroy(&m);
    be->destroy(be);
    return test_finish("test_multi_turn_rl");
}
