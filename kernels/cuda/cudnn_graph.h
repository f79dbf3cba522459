/* Internal to the cuDNN files of the CUDA backend (C++ only): cudnn_graph.cu, attention_cudnn.cu and
 * attention_cudnn_stub.cu.
 *
 * ATT_CUDNN is 1 when this build can run cuDNN attention: built with cuDNN (EXITRL_HAVE_CUDNN) and
 * its headers at least MIN_CUDNN. Then attention_cudnn.cu and cudnn_graph.cu compile, else only
 * attention_cudnn_stub.cu does.
 *
 * Graph building (cudnn_graph.cu) through cuDNN's C backend API. A builder collects the
 * descriptors of one operation graph into a cudnn_plan, which owns them (cudnn_plan_release
 * destroys them with the plan); the builder functions record the first failure (which call, which
 * descriptor and attribute, cuDNN's status and message) in the builder instead of exiting, and do
 * nothing once one is recorded, so a graph is written as straight-line code and checked once with
 * failed(). Every tensor is 4-D and declares 16-byte alignment; `what` names a tensor or an
 * operation in the messages. */
#ifndef EXITRL_CUDNN_GRAPH_H
#define EXITRL_CUDNN_GRAPH_H

#include <stdint.h>

#include "cuda_backend.h"

#ifdef EXITRL_HAVE_CUDNN
#include <cudnn.h>
#endif

/* Oldest cuDNN library the attention graphs run on (see attention_cudnn.cu's header comment), and
 * the headers they need. */
#define MIN_CUDNN 91600

#if defined(EXITRL_HAVE_CUDNN) && CUDNN_VERSION >= MIN_CUDNN
#define ATT_CUDNN 1
#else
#define ATT_CUDNN 0
#endif

#if ATT_CUDNN

/* Fatal check for calls made while running an op (plans are built non-fatally, see builder). */
#define CUDNN_CHECK(call)                                                                          \
    do {                                                                                           \
        cudnnStatus_t st_ = (call);                                                                \
        if (st_ != CUDNN_STATUS_SUCCESS) cudnn_fatal(__FILE__, __LINE__, #call, st_);              \
    } while (0)

/* Exits naming the call, cuDNN's status and its last error message. */
void cudnn_fatal(const char *file, int line, const char *call, cudnnStatus_t st);

#define MAX_DESCS 160 /* descriptors one plan is built from (the attention backward uses 73) */
#define MAX_OPS 48

/* An execution plan and every descriptor it was built from. */
typedef struct {
    cudnnBackendDescriptor_t plan; /* the finalized execution plan */
    cudnnBackendDescriptor_t cfg;  /* the engine configuration it was made from */
    int64_t workspace;             /* bytes of workspace the plan asks for */
    /* Every descriptor the plan was built from, destroyed with it. */
    cudnnBackendDescriptor_t descs[MAX_DESCS];
    int ndesc;
} cudnn_plan;

/* Destroys the plan, its configuration and its descriptors (not p itself). */
void cudnn_plan_release(cudnn_plan *p);

/* Graph construction that records the first failure instead of exiting, so init can report it as
 * a reason. */
typedef struct {
    cudnn_plan *p;
    cudnnHandle_t handle;
    const char *graph; /* "forward" or "backward", for messages */
    cudnnStatus_t status;
    char msg[2048];
    cudnnBackendDescriptor_t ops[MAX_OPS];
    int nops;
    int64_t next_uid;
} builder;

/* A builder filling p, for the graph named graph; virtual tensors get ids from first_virtual_uid. */
void builder_init(builder *b, cudnn_plan *p, cudnnHandle_t handle, const char *graph, int64_t first_virtual_uid);
/* 1 once a failure is recorded (b->msg says what failed). */
int failed(const builder *b);

typedef struct {
    int64_t v[4];
} shape4;

shape4 s4(int64_t a, int64_t b, int64_t c, int64_t d);

/* Tensors: io binds to memory under uid (the variant pack's id); virt is an intermediate (the next
 * virtual id); scalar is an fp32 passed by value (a host pointer in the variant pack). */
cudnnBackendDescriptor_t io(builder *b, const char *what, int64_t uid, cudnnDataType_t type, shape4 dims,
                            shape4 strides);
cudnnBackendDescriptor_t virt(builder *b, const char *what, cudnnDataType_t type, shape4 dims, shape4 strides);
cudnnBackendDescriptor_t scalar(builder *b, const char *what, int64_t uid);

/* Operations, added to the graph in the order of the calls. */
/* c = a @ bm over the last two dimensions, batched over the first two, fp32 accumulation. */
void op_matmul(builder *b, const char *what, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t bm,
               cudnnBackendDescriptor_t c);
/* y = mode(x, bb, t) elementwise with broadcasting (bb, t NULL when the mode takes fewer inputs;
 * BINARY_SELECT is y = t ? x : bb); axis >= 0 only for GEN_INDEX. pw1 / pw2: fp32, one / two
 * inputs. */
void op_pointwise(builder *b, const char *what, cudnnPointwiseMode_t mode, cudnnDataType_t prec, int64_t axis,
                  cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t bb, cudnnBackendDescriptor_t t,
                  cudnnBackendDescriptor_t y);
void pw1(builder *b, const char *what, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
         cudnnBackendDescriptor_t y);
void pw2(builder *b, const char *what, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
         cudnnBackendDescriptor_t bb, cudnnBackendDescriptor_t y);
/* y = reduction of x over the dimensions where y has extent 1. */
void op_reduction(builder *b, const char *what, cudnnReduceTensorOp_t red, cudnnBackendDescriptor_t x,
                  cudnnBackendDescriptor_t y);
/* y = x seen through other dimensions/strides (used for transposed views). */
void op_reshape(builder *b, const char *what, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y);

/* Finalizes the operation graph and keeps, in b->p, the first engine configuration that cuDNN's
 * heuristics offer (mode A, then FALLBACK) and that finalizes into an execution plan, with its
 * workspace size; a failure is recorded in b. */
void make_plan(builder *b);

#endif /* ATT_CUDNN */
#endif
