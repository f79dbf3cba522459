/* Collectives across processes for data parallelism (ops.h "collectives"): NCCL on the backend's
 * stream. The host (host/dist) bootstraps the communicator over MPI: rank 0 makes the unique id,
 * MPI broadcasts it, every rank calls comm_init. Built only with NCCL (EXITRL_HAVE_NCCL); without
 * it the backend leaves the three members NULL and the host sums through host memory. */
#include <stdio.h>
#include <string.h>

#include "cuda_backend.h"

#ifdef EXITRL_HAVE_NCCL
#include <nccl.h>

static_assert(sizeof(ncclUniqueId) <= EXITRL_COMM_ID_BYTES, "an NCCL unique id must fit EXITRL_COMM_ID_BYTES");

static int nccl_failed(ncclResult_t r, const char *call, char *why, size_t why_len) {
    if (r == ncclSuccess) return 0;
    snprintf(why, why_len, "%s: %s", call, ncclGetErrorString(r));
    return -1;
}

extern "C" int cuda_comm_unique_id(exitrl_backend *be, void *id, char *why, size_t why_len) {
    (void)be;
    ncclUniqueId uid;
    if (nccl_failed(ncclGetUniqueId(&uid), "ncclGetUniqueId", why, why_len)) return -1;
    memset(id, 0, EXITRL_COMM_ID_BYTES);
    memcpy(id, &uid, sizeof uid);
    return 0;
}

extern "C" int cuda_comm_init(exitrl_backend *be, const void *id, int rank, int size, char *why, size_t why_len) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (ctx->nccl_comm) cuda_comm_release(ctx);
    ncclUniqueId uid;
    memcpy(&uid, id, sizeof uid);
    ncclComm_t comm = NULL;
    if (nccl_failed(ncclCommInitRank(&comm, size, uid, rank), "ncclCommInitRank", why, why_len)) return -1;
    ctx->nccl_comm = comm;
    return 0;
}

extern "C" int cuda_allreduce_sum_f32(exitrl_backend *be, float *buf, size_t n, char *why, size_t why_len) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (!ctx->nccl_comm) {
        snprintf(why, why_len, "allreduce before comm_init");
        return -1;
    }
    return nccl_failed(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, (ncclComm_t)ctx->nccl_comm, ctx->stream),
                       "ncclAllReduce", why, why_len);
}

extern "C" void cuda_comm_release(cuda_ctx *ctx) {
    if (ctx->nccl_comm) ncclCommDestroy((ncclComm_t)ctx->nccl_comm);
    ctx->nccl_comm = NULL;
}

#else

extern "C" void cuda_comm_release(cuda_ctx *ctx) { (void)ctx; }

#endif
