/* The optimizer step of the policy: gradient norm and clipping, AdamW on every tensor, and the
 * whole training step (zero, forward, loss, backward, update), captured as one graph on backends
 * that have graphs. */
#include <math.h>
#include <stdio.h>

#include "model/model.h"
#include "model/model_internal.h"
#include "model/nvtx.h"

void gpt_zero_grad(gpt_model *m) { m->backend->zero(m->backend, m->grads, m->num_params * sizeof(float)); }

static int decays(int t) {
    return t == P_WTE || t == P_WPE || t == P_QKVW || t == P_ATTPROJW || t == P_FCW || t == P_FCPROJW;
}

/* Advances the step counter and writes this step's lr, t and bias corrections to the device. */
static void upload_step_vals(gpt_model *m, const gpt_adamw_params *o) {
    float vals[EXITRL_STEP_NVALS];
    m->adam_step++;
    exitrl_step_vals_set(vals, o->lr, m->adam_step, o->beta1, o->beta2);
    m->backend->upload(m->backend, m->step_vals, vals, sizeof vals);
}

static void adamw_all(gpt_model *m, const gpt_adamw_params *o) {
    exitrl_backend *be = m->backend;
    for (int t = 0; t < GPT_NUM_PARAM_TENSORS; t++) {
        size_t off = m->param_offsets[t];
        be->adamw_update(be, m->master + off, gpt_param(m, t, 0), m->grads + off, m->adam_m + off,
                         m->adam_v + off, m->param_sizes[t], m->step_vals, o->beta1, o->beta2, o->eps,
                         decays(t) ? o->weight_decay : 0.0f);
    }
}

/* The optimizer's device work: global norm and clip scale, then AdamW on every tensor. No host copy
 * or synchronisation, so it can be part of a captured step. */
static void update_body(gpt_model *m, const gpt_adamw_params *o) {
    nvtx_push("optimizer");
    m->backend->grad_norm_clip(m->backend, m->step_vals, m->grads, m->num_params, o->grad_clip);
    adamw_all(m, o);
    nvtx_pop();
}

static float read_grad_norm(gpt_model *m) {
    float vals[EXITRL_STEP_NVALS];
    m->backend->download(m->backend, vals, m->step_vals, sizeof vals);
    return vals[EXITRL_STEP_NORM];
}

float gpt_update(gpt_model *m, const gpt_adamw_params *o) {
    upload_step_vals(m, o);
    update_body(m, o);
    return read_grad_norm(m);
}

int gpt_update_if_finite(gpt_model *m, const gpt_adamw_params *o, float *grad_norm) {
    upload_step_vals(m, o);
    m->backend->grad_norm_clip(m->backend, m->step_vals, m->grads, m->num_params, o->grad_clip);
    float norm = read_grad_norm(m);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) {
        m->adam_step--; /* not taken: the next step reuses this number */
        return 1;
    }
    nvtx_push("optimizer");
    adamw_all(m, o);
    nvtx_pop();
    return 0;
}

/* Everything a training step does on the device, in order; no host copies or synchronisation. */
static void train_step_body(gpt_model *m, int B, int T, const gpt_adamw_params *o) {
    exitrl_backend *be = m->backend;
    be->zero(be, m->grads, m->num_params * sizeof(float));
    gpt_forward_body(m, B, T);
    be->classifier_forward_backward(be, m->acts.logits, m->acts.losses, m->acts.loss_weights, m->acts.targets,
                                    B * T, m->cfg.vocab, m->cfg.vocab_padded);
    gpt_backward_body(m, B, T);
    update_body(m, o);
}

/* A captured step replays fixed pointers, sizes and optimizer constants; only lr and t change (they
 * are read from step_vals), so any other change needs a new capture. */
static int step_graph_matches(const gpt_model *m, int B, int T, const gpt_adamw_params *o) {
    const gpt_adamw_params *g = &m->graph_opt;
    return m->graph_B == B && m->graph_T == T && m->graph_params == m->params && g->beta1 == o->beta1 &&
           g->beta2 == o->beta2 && g->eps == o->eps && g->weight_decay == o->weight_decay &&
           g->grad_clip == o->grad_clip;
}

float gpt_train_step(gpt_model *m, int B, int T, const gpt_adamw_params *o, float *grad_norm) {
    exitrl_backend *be = m->backend;
    gpt_check_batch(m, B, T);
    upload_step_vals(m, o);
    if (be->graph_capture_begin) {
        if (m->step_graph && !step_graph_matches(m, B, T, o)) {
            be->graph_destroy(be, m->step_graph);
            m->step_graph = NULL;
        }
        /* The first step of a shape runs uncaptured, so the ops' lazy set-up (library plans,
         * scratch sizes) happens outside the capture; the second is captured, then replayed. */
        if (!m->step_graph && !m->graph_failed && m->graph_B == B && m->graph_T == T &&
            m->graph_params == m->params) {
            if (be->graph_capture_begin(be) == 0) {
                train_step_body(m, B, T, o); /* recorded, not run: the launch below runs it */
                m->step_graph = be->graph_capture_end(be);
                m->graph_opt = *o;
            }
            m->graph_failed = m->step_graph == NULL; /* the backend said why; stay uncaptured */
        }
        m->graph_B = B, m->graph_T = T, m->graph_params = m->params;
    }
    if (m->step_graph) {
        nvtx_push("train_step (graph)");
        be->graph_launch(be, m->step_graph);
        nvtx_pop();
    } else {
        train_step_body(m, B, T, o);
    }
    float norm = read_grad_norm(m);
    if (grad_norm) *grad_norm = norm;
    return gpt_weighted_loss(m, B, T);
}
