/* Evaluation on a domain's held-out split (docs/DESIGN.md §7): the base score of greedy answers, and the
 * multi-step self-improvement protocol: an answer to the base prompt, then K steps each prompted
 * with the request and the latest attempt, avg@n over sampled chains. */
#ifndef EXITRL_TASK_EVAL_H
#define EXITRL_TASK_EVAL_H
#include <stdio.h>

#include "model/model.h"
#include "rl/transitions.h"
#include "tasks/task.h"

/* Held-out problems come from this fixed stream, so every run is evaluated on the same ones. */
#define TASK_EVAL_STREAM_SEED 0x5EEDE7A1ULL

typedef struct {
    double score;   /* mean reward */
    double solved;  /* share with reward 1 */
    double valid;   /* share of well-formed answers (EOS, bytes only, the domain's format) */
} task_eval_base_result;

/* Greedy answers to the base prompts of the first n held-out instances. Returns 0 or -1. */
int task_eval_base(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], gpt_model *m, int n,
                   int max_new, task_eval_base_result *out);

typedef struct {
    int n_instances, n_samples, K;
    int max_new;
    int feedback;          /* improve prompts show the verifier's feedback on the latest attempt */
    float temperature;     /* sampling temperature; 0 = greedy (then n_samples should be 1) */
    uint64_t seed;
    int show;              /* print this many example chains (attempt, feedback, score per step) */
    FILE *show_to;         /* where (NULL: stdout) */
} task_eval_options;

typedef struct {
    int K;
    double *score;         /* [K+1] mean reward at step k over all chains */
    double *score_se;      /* [K+1] its standard error over instances (chains of one instance are
                            * averaged first: they share the problem, so they are not independent) */
    double *solved;        /* [K+1] share of chains with reward 1 at step k */
    double *valid;         /* [K+1] share of well-formed answers */
    double *net_corrections; /* [K+1] (wrong->right minus right->wrong between k-1 and k) per chain; [0] = 0 */
    /* [K+1] each, [0] = 0: step k's attempt against step k-1's on the same chain (rl/transitions.h) */
    double *right_right, *right_wrong, *wrong_right, *wrong_wrong; /* shares of chains, solved = reward 1 */
    double *improved, *worse, *unchanged; /* shares of chains whose reward rose / fell / stayed */
    double *copy_rate;     /* share of attempts identical to the previous one */
    double *edit_mean;     /* mean byte edit distance to the previous attempt */
    transition_classes by_feedback; /* steps 1..K pooled, split by the verdict on the previous attempt */
} task_eval_steps_result;

/* One generated answer (the generation helper both protocols share). */
typedef struct {
    char answer[512];         /* the answer bytes before EOS (completion_answer), NUL-terminated */
    int len;                  /* their length, or -1 when malformed (no EOS, a special token, too long) */
    char raw[TASK_ANSWER_CAP]; /* the raw attempt shown to a next step: the bytes before the first
                                * special token, NUL-terminated */
    int raw_len;
} task_eval_answer;

/* Standard error over instances of per-chain values v[n_inst * per] (chains of one instance are
 * averaged first: they share the problem, so they are not independent); 0 for one instance. */
double task_eval_se_over_instances(const double *v, int n_inst, int per);

/* Samples one answer per prompt (prompt i is prompts[i*stride .. + lens[i])) with the rollout
 * engine, in batches of up to 256 sequences; sequence i draws as seq_offset + i. Returns 0, or -1
 * with a message (a prompt leaving no room in the context, out of memory, a rollout error). */
int task_eval_generate(gpt_model *m, const int *prompts, const int *lens, int stride, int n, int max_new,
                       const struct exitrl_sampling *sp, int seq_offset, task_eval_answer *out);

/* Prints s[0..n) with quotes, backslashes and non-printable bytes escaped, so an attempt shows
 * exactly what the model wrote. */
void task_eval_print_escaped(FILE *f, const char *s, size_t n);

/* Runs the K-step protocol. Allocates the result arrays (free with task_eval_steps_free).
 * Returns 0 or -1 with a message. */
int task_eval_steps(const task_domain *d, const int32_t knobs[TASK_MAX_KNOBS], gpt_model *m,
                    const task_eval_options *o, task_eval_steps_result *out);
void task_eval_steps_free(task_eval_steps_result *r);
#endif
