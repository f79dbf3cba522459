/* Internal: the CPU reference kernels that backend.c puts into the exitrl_backend table.
 * Contracts are the ones in ops.h; all tensors are fp32 host memory. */
#ifndef EXITRL_CPU_OPS_H
#define EXITRL_CPU_OPS_H
#include "ops.h"

/* glibc declares its vector expf variants (libmvec) only under -ffast-math, so without this the
 * `omp simd` loops over expf (GELU, softmax) call the scalar expf once per element. Declared here,
 * the loops call the 8- or 16-wide variant (at most 4 ulp from expf per glibc's manual). CMake defines
 * EXITRL_HAVE_MVEC when it found libmvec (glibc, x86-64) and links it. */
#if defined(EXITRL_HAVE_MVEC) && defined(__GNUC__) && !defined(__clang__) && !defined(__FAST_MATH__)
#include <math.h>
__attribute__((__simd__("notinbranch"))) float expf(float);
#endif

void cpu_encoder_forward(exitrl_backend *be, void *out, const int *tok, const void *wte,
                         const void *wpe, int B, int T, int C);
void cpu_encoder_backward(exitrl_backend *be, float *dwte, float *dwpe, const void *dout,
                          const int *tok, int B, int T, int C);
void cpu_layernorm_forward(exitrl_backend *be, void *out, float *mean, float *rstd, const void *inp,
                           const void *w, const void *b, int N, int C);
void cpu_residual_layernorm_forward(exitrl_backend *be, void *res, void *out, float *mean,
                                    float *rstd, const void *a, const void *b_in, const void *w,
                                    const void *bias, int N, int C);
void cpu_layernorm_backward(exitrl_backend *be, void *dinp, float *dw, float *db, const void *dout,
                            const void *inp, const void *w, const float *mean, const float *rstd,
                            int N, int C);
void cpu_matmul_forward(exitrl_backend *be, void *out, void *pre_gelu, const void *inp,
                        const void *w, const void *bias, int N, int C, int OC);
/* Bias add and GELU of cpu_matmul_forward after the product is in pre_gelu (or out). */
void cpu_matmul_epilogue(exitrl_backend *be, void *out, void *pre_gelu, const void *bias, int N, int OC);
size_t cpu_panel_weight_bytes(exitrl_backend *be, int C, int OC);
void cpu_panel_weight(exitrl_backend *be, void *dst, const void *w, int C, int OC);
void cpu_matmul_forward_panels(exitrl_backend *be, void *out, void *pre_gelu, const void *inp,
                               const void *wpanels, const void *bias, int N, int C, int OC);
void cpu_matmul_backward(exitrl_backend *be, void *dinp, float *dweight, float *dbias, void *dout,
                         const void *inp, const void *w, const void *pre_gelu, int N, int C,
                         int OC);
void cpu_attention_forward(exitrl_backend *be, void *out, float *lse, const void *qkv, int B, int T,
                           int C, int NH);
void cpu_attention_backward(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                            const void *out, const float *lse, int B, int T, int C, int NH);
void cpu_attention_forward_packed(exitrl_backend *be, void *out, float *lse, const void *qkv,
                                  const int *prefix_len, const int *seg_start, int B, int T, int C, int NH);
void cpu_attention_backward_packed(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                                   const void *out, const float *lse, const int *prefix_len,
                                   const int *seg_start, int B, int T, int C, int NH);
void cpu_classifier_forward_backward(exitrl_backend *be, void *logits, float *losses,
                                     const float *dloss_weights, const int *targets, int N, int V,
                                     int Vp);
void cpu_grad_norm_clip(exitrl_backend *be, float *vals, const float *x, size_t n, float max_norm);
void cpu_adamw_update(exitrl_backend *be, float *master, void *params_act, const float *grads,
                      float *m, float *v, size_t n, const float *vals, float beta1, float beta2,
                      float eps, float weight_decay);
void cpu_encoder_forward_at(exitrl_backend *be, void *out, const int *tok_buf, const int *pos, int S,
                            const void *wte, const void *wpe, int B, int C);
void cpu_kv_cache_store(exitrl_backend *be, void *kcache, void *vcache, const void *qkv,
                        const int *start_pos, int B, int T, int S, int C);
void cpu_attention_decode(exitrl_backend *be, void *out, const void *qkv, const void *kcache,
                          const void *vcache, const int *pos, int B, int S, int C, int NH);
void cpu_gather_rows(exitrl_backend *be, void *dst, const void *src, const int *idx, int B, int C);
void cpu_hidden_accumulate(exitrl_backend *be, float *emb, const void *hidden, const int *done, int B,
                           int C);
void cpu_sample_step(exitrl_backend *be, const void *logits, const struct exitrl_sampling *sp,
                     int *tok_buf, float *logprob_buf, int *pos, int *done, const int *limit, int B,
                     int S, int V, int Vp, int seq_offset);
void cpu_group_advantage(exitrl_backend *be, float *adv, const float *rewards,
                         const float *div_scale, int P, int G, int scale_mode, float eps);
void cpu_diversity_scale(exitrl_backend *be, float *d, const float *emb, int P, int G, int C);
void cpu_score_groups(exitrl_backend *be, float *scores, int *chosen, const float *rewards, int P,
                      int G, int mode, int k, uint64_t seed);
void cpu_grpo_classifier(exitrl_backend *be, void *logits, const int *targets, const float *lp_old,
                         const float *lp_ref, const float *adv, const float *weight, float inv_temp,
                         float eps_low, float eps_high, float beta, float *lp_new, float *loss_out,
                         float *clipped, int N, int V, int Vp);

/* GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
float cpu_gelu(float x);
/* d GELU / dx of the same approximation. */
float cpu_gelu_grad(float x);
#endif
