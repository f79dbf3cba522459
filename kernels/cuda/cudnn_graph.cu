/* Building cuDNN backend-API ("graph") operation graphs and their execution plans (declarations and
 * the conventions in cudnn_graph.h): descriptors, tensors, matmul / pointwise / reduction / reshape
 * operations, and the choice of an engine configuration through cuDNN's heuristics. Used by
 * attention_cudnn.cu. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudnn_graph.h"

#if ATT_CUDNN

void cudnn_fatal(const char *file, int line, const char *call, cudnnStatus_t st) {
    char last[1024] = "";
    cudnnGetLastErrorString(last, sizeof last);
    cuda_fatal(file, line, "%s failed: %s%s%s", call, cudnnGetErrorString(st), last[0] ? ": " : "", last);
}

void cudnn_plan_release(cudnn_plan *p) {
    if (p->plan) cudnnBackendDestroyDescriptor(p->plan);
    if (p->cfg) cudnnBackendDestroyDescriptor(p->cfg);
    for (int i = p->ndesc - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(p->descs[i]);
}

void builder_init(builder *b, cudnn_plan *p, cudnnHandle_t handle, const char *graph, int64_t first_virtual_uid) {
    memset(b, 0, sizeof *b);
    b->p = p;
    b->handle = handle;
    b->graph = graph;
    b->status = CUDNN_STATUS_SUCCESS;
    b->next_uid = first_virtual_uid;
}

static void record_v(builder *b, cudnnStatus_t st, int with_last, const char *fmt, va_list ap) {
    if (b->status != CUDNN_STATUS_SUCCESS) return;
    b->status = st == CUDNN_STATUS_SUCCESS ? CUDNN_STATUS_INTERNAL_ERROR : st;
    char what[512], last[1024] = "";
    vsnprintf(what, sizeof what, fmt, ap);
    if (with_last && st != CUDNN_STATUS_SUCCESS) cudnnGetLastErrorString(last, sizeof last);
    snprintf(b->msg, sizeof b->msg, "%s graph: %s: %s%s%s", b->graph, what,
             st != CUDNN_STATUS_SUCCESS ? cudnnGetErrorString(st) : "internal limit", last[0] ? ": " : "", last);
}

/* Records the first failure with cuDNN's status name and its last error message. */
static void record(builder *b, cudnnStatus_t st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record_v(b, st, 1, fmt, ap);
    va_end(ap);
}

/* The same without cuDNN's last message (for text that already quotes it). */
static void record_plain(builder *b, cudnnStatus_t st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record_v(b, st, 0, fmt, ap);
    va_end(ap);
}

int failed(const builder *b) { return b->status != CUDNN_STATUS_SUCCESS; }

static cudnnBackendDescriptor_t make(builder *b, cudnnBackendDescriptorType_t type, const char *what) {
    if (failed(b)) return NULL;
    if (b->p->ndesc == MAX_DESCS) {
        record(b, CUDNN_STATUS_SUCCESS, "more than %d descriptors (raise MAX_DESCS)", MAX_DESCS);
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t st = cudnnBackendCreateDescriptor(type, &d);
    if (st != CUDNN_STATUS_SUCCESS) {
        record(b, st, "cudnnBackendCreateDescriptor(%s, type %d)", what, (int)type);
        return NULL;
    }
    b->p->descs[b->p->ndesc++] = d;
    return d;
}

#define SET(b, d, what, attr, type, n, value) set_attr((b), (d), (what), (attr), #attr, (type), (n), (value))
static void set_attr(builder *b, cudnnBackendDescriptor_t d, const char *what, cudnnBackendAttributeName_t attr,
                     const char *attr_name, cudnnBackendAttributeType_t type, int64_t n, const void *value) {
    if (failed(b) || !d) return;
    cudnnStatus_t st = cudnnBackendSetAttribute(d, attr, type, n, value);
    if (st != CUDNN_STATUS_SUCCESS) record(b, st, "cudnnBackendSetAttribute(%s, %s)", what, attr_name);
}

static void finalize(builder *b, cudnnBackendDescriptor_t d, const char *what) {
    if (failed(b) || !d) return;
    cudnnStatus_t st = cudnnBackendFinalize(d);
    if (st != CUDNN_STATUS_SUCCESS) record(b, st, "cudnnBackendFinalize(%s)", what);
}

shape4 s4(int64_t a, int64_t b, int64_t c, int64_t d) {
    shape4 s = {{a, b, c, d}};
    return s;
}

/* A tensor descriptor: uid 0 takes the next virtual id. Every tensor declares 16-byte alignment
 * (the cuDNN attention kernels load 16 bytes at a time); the callers check the pointers. */
static cudnnBackendDescriptor_t tensor(builder *b, const char *what, int64_t uid, cudnnDataType_t type, shape4 dims,
                                       shape4 strides, bool is_virtual, bool by_value) {
    cudnnBackendDescriptor_t d = make(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, what);
    int64_t alignment = 16;
    if (uid == 0) uid = b->next_uid++;
    SET(b, d, what, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(b, d, what, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    SET(b, d, what, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.v);
    SET(b, d, what, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.v);
    SET(b, d, what, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    if (is_virtual) SET(b, d, what, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value) SET(b, d, what, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    finalize(b, d, what);
    return d;
}

cudnnBackendDescriptor_t io(builder *b, const char *what, int64_t uid, cudnnDataType_t type, shape4 dims,
                                   shape4 strides) {
    return tensor(b, what, uid, type, dims, strides, false, false);
}

cudnnBackendDescriptor_t virt(builder *b, const char *what, cudnnDataType_t type, shape4 dims,
                                     shape4 strides) {
    return tensor(b, what, 0, type, dims, strides, true, false);
}

/* An fp32 scalar passed by value (a host pointer in the variant pack). */
cudnnBackendDescriptor_t scalar(builder *b, const char *what, int64_t uid) {
    return tensor(b, what, uid, CUDNN_DATA_FLOAT, s4(1, 1, 1, 1), s4(1, 1, 1, 1), false, true);
}

static void add_op(builder *b, cudnnBackendDescriptor_t op) {
    if (failed(b)) return;
    if (b->nops == MAX_OPS) {
        record(b, CUDNN_STATUS_SUCCESS, "more than %d operations (raise MAX_OPS)", MAX_OPS);
        return;
    }
    b->ops[b->nops++] = op;
}

/* c = a @ bm over the last two dimensions, batched over the first two, fp32 accumulation. */
void op_matmul(builder *b, const char *what, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t bm,
                      cudnnBackendDescriptor_t c) {
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t mm = make(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR, what);
    SET(b, mm, what, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    finalize(b, mm, what);
    cudnnBackendDescriptor_t op = make(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what);
    SET(b, op, what, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    SET(b, op, what, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bm);
    SET(b, op, what, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    SET(b, op, what, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm);
    finalize(b, op, what);
    add_op(b, op);
}

/* y = mode(x, bb, t) elementwise with broadcasting (bb, t NULL when the mode takes fewer inputs;
 * BINARY_SELECT is y = t ? x : bb); axis >= 0 only for GEN_INDEX. */
void op_pointwise(builder *b, const char *what, cudnnPointwiseMode_t mode, cudnnDataType_t prec, int64_t axis,
                         cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t bb, cudnnBackendDescriptor_t t,
                         cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t pw = make(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what);
    SET(b, pw, what, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SET(b, pw, what, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0) SET(b, pw, what, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    finalize(b, pw, what);
    cudnnBackendDescriptor_t op = make(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, what);
    SET(b, op, what, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SET(b, op, what, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (bb) SET(b, op, what, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bb);
    if (t) SET(b, op, what, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    SET(b, op, what, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    finalize(b, op, what);
    add_op(b, op);
}

void pw1(builder *b, const char *what, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                cudnnBackendDescriptor_t y) {
    op_pointwise(b, what, mode, CUDNN_DATA_FLOAT, -1, x, NULL, NULL, y);
}

void pw2(builder *b, const char *what, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                cudnnBackendDescriptor_t bb, cudnnBackendDescriptor_t y) {
    op_pointwise(b, what, mode, CUDNN_DATA_FLOAT, -1, x, bb, NULL, y);
}

/* y = reduction of x over the dimensions where y has extent 1 (here: the last). */
void op_reduction(builder *b, const char *what, cudnnReduceTensorOp_t red, cudnnBackendDescriptor_t x,
                         cudnnBackendDescriptor_t y) {
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t rd = make(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what);
    SET(b, rd, what, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &red);
    SET(b, rd, what, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    finalize(b, rd, what);
    cudnnBackendDescriptor_t op = make(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what);
    SET(b, op, what, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(b, op, what, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(b, op, what, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd);
    finalize(b, op, what);
    add_op(b, op);
}

/* y = x seen through other dimensions/strides (used for transposed views). */
void op_reshape(builder *b, const char *what, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op = make(b, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what);
    SET(b, op, what, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(b, op, what, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    finalize(b, op, what);
    add_op(b, op);
}


/* Finalizes the operation graph and keeps the first engine configuration that cuDNN's heuristics
 * offer (mode A, then FALLBACK) and that finalizes into an execution plan. */
void make_plan(builder *b) {
    if (failed(b)) return;
    const char *what = "operation graph";
    cudnnBackendDescriptor_t graph = make(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, what);
    SET(b, graph, what, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, b->nops, b->ops);
    SET(b, graph, what, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->handle);
    finalize(b, graph, what);
    if (failed(b)) return;

    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    const char *mode_names[2] = {"A", "FALLBACK"};
    char refusal[1024] = "";
    cudnnStatus_t refusal_status = CUDNN_STATUS_NOT_SUPPORTED;
    int offered = 0;
    for (int m = 0; m < 2 && !b->p->plan; m++) {
        cudnnBackendDescriptor_t heur = NULL;
        cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur);
        if (st != CUDNN_STATUS_SUCCESS) {
            record(b, st, "cudnnBackendCreateDescriptor(engine heuristics)");
            return;
        }
        const char *step = "CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH";
        st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                      &graph);
        if (st == CUDNN_STATUS_SUCCESS) {
            step = "CUDNN_ATTR_ENGINEHEUR_MODE";
            st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[m]);
        }
        if (st == CUDNN_STATUS_SUCCESS) {
            step = "cudnnBackendFinalize";
            st = cudnnBackendFinalize(heur);
        }
        int64_t n = 0;
        if (st == CUDNN_STATUS_SUCCESS) {
            step = "CUDNN_ATTR_ENGINEHEUR_RESULTS (count)";
            st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n,
                                          NULL);
        }
        if (st != CUDNN_STATUS_SUCCESS) {
            char last[512] = "";
            cudnnGetLastErrorString(last, sizeof last);
            snprintf(refusal, sizeof refusal, "heuristics mode %s, %s: %s%s%s", mode_names[m], step,
                     cudnnGetErrorString(st), last[0] ? ": " : "", last);
            refusal_status = st;
            cudnnBackendDestroyDescriptor(heur);
            continue;
        }
        cudnnBackendDescriptor_t *cfgs = n > 0 ? (cudnnBackendDescriptor_t *)calloc((size_t)n, sizeof *cfgs) : NULL;
        int64_t created = 0, got = 0;
        if (n > 0 && !cfgs) {
            cudnnBackendDestroyDescriptor(heur);
            record(b, CUDNN_STATUS_SUCCESS, "out of host memory for %lld engine configurations", (long long)n);
            return;
        }
        while (created < n &&
               cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[created]) == CUDNN_STATUS_SUCCESS)
            created++;
        if (created > 0) {
            st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, created,
                                          &got, cfgs);
            if (st != CUDNN_STATUS_SUCCESS) {
                char last[512] = "";
                cudnnGetLastErrorString(last, sizeof last);
                snprintf(refusal, sizeof refusal, "heuristics mode %s, CUDNN_ATTR_ENGINEHEUR_RESULTS: %s%s%s",
                         mode_names[m], cudnnGetErrorString(st), last[0] ? ": " : "", last);
                refusal_status = st;
                got = 0;
            }
        }
        offered += (int)got;
        int chosen = -1;
        for (int64_t i = 0; i < got && chosen < 0; i++) {
            cudnnBackendDescriptor_t plan = NULL;
            st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
            if (st == CUDNN_STATUS_SUCCESS)
                st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                              &b->handle);
            if (st == CUDNN_STATUS_SUCCESS)
                st = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                              CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i]);
            if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(plan);
            if (st == CUDNN_STATUS_SUCCESS) {
                b->p->plan = plan;
                chosen = (int)i;
            } else {
                char last[512] = "";
                cudnnGetLastErrorString(last, sizeof last);
                snprintf(refusal, sizeof refusal, "heuristics mode %s, engine configuration %lld of %lld: %s%s%s",
                         mode_names[m], (long long)i + 1, (long long)got, cudnnGetErrorString(st),
                         last[0] ? ": " : "", last);
                refusal_status = st;
                if (plan) cudnnBackendDestroyDescriptor(plan);
            }
        }
        /* The chosen configuration lives as long as the plan; the others go now. */
        for (int64_t i = 0; i < created; i++) {
            if (i == chosen)
                b->p->cfg = cfgs[i];
            else
                cudnnBackendDestroyDescriptor(cfgs[i]);
        }
        free(cfgs);
        cudnnBackendDestroyDescriptor(heur);
    }
    if (!b->p->plan) {
        /* With no configuration offered, cuDNN states its per-engine reasons only in its log. */
        record_plain(b, refusal_status,
                     "no cuDNN engine runs this graph (%d configurations offered by heuristics modes A and FALLBACK; "
                     "last refusal: %s)",
                     offered,
                     refusal[0] ? refusal
                                : "none; run with CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG=stderr for cuDNN's reasons");
        return;
    }
    int64_t count = 0;
    cudnnStatus_t st = cudnnBackendGetAttribute(b->p->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                                1, &count, &b->p->workspace);
    if (st != CUDNN_STATUS_SUCCESS) record(b, st, "cudnnBackendGetAttribute(execution plan, WORKSPACE_SIZE)");
    if (b->p->workspace < 0) b->p->workspace = 0;
}


#endif
