/* Data parallelism across processes over MPI (contract in dist.h). */
#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef EXITRL_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local_rank = 0, g_mpi = 0;
static double g_comm_seconds; /* time spent in dist_sum_grads (dist_comm_seconds) */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Whether a launcher (mpirun, srun) started this process as one rank of a job. */
static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

#ifdef EXITRL_HAVE_MPI
/* Ends every rank after a failed MPI call, naming this rank, the call and the data. */
static void check(int rc, const char *call, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char reason[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, reason, &len) != MPI_SUCCESS) snprintf(reason, sizeof reason, "error %d", rc);
    fprintf(stderr, "exitrl: rank %d of %d: %s (%s) failed: %s\n", g_rank, g_size, call, what, reason);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}
#endif

/* Ends every rank after a backend collective failed (a rank whose id call failed may print nothing). */
static void fail_backend(const char *call, const char *what, const char *why) {
    fprintf(stderr, "exitrl: rank %d of %d: %s (%s) failed: %s\n", g_rank, g_size, call, what, why[0] ? why : "on another rank");
#ifdef EXITRL_HAVE_MPI
    if (g_mpi) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
    exit(1);
}

int dist_init(int *argc, char ***argv) {
    if (!launched_by_mpi()) return 0;
#ifdef EXITRL_HAVE_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "exitrl: MPI_Init_thread failed: cannot join the MPI job\n");
        return 1;
    }
    g_mpi = 1;
    /* Errors come back to check(), which names the rank and the call before aborting the job. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank), "MPI_Comm_rank", "start-up");
    check(MPI_Comm_size(MPI_COMM_WORLD, &g_size), "MPI_Comm_size", "start-up");
    MPI_Comm node; /* the ranks on this machine: this rank's place among them picks its GPU */
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type", "start-up");
    check(MPI_Comm_rank(node, &g_local_rank), "MPI_Comm_rank", "start-up");
    MPI_Comm_free(&node);
    return 0;
#else
    (void)argc, (void)argv;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (n && atoi(n) == 1) return 0; /* mpirun -np 1: one process, as without mpirun */
    fprintf(stderr, "exitrl: launched as one rank of an MPI job, but this build has no MPI support "
                    "(install an MPI, e.g. Debian libopenmpi-dev, and rebuild)\n");
    return 1;
#endif
}

void dist_finalize(void) {
#ifdef EXITRL_HAVE_MPI
    if (g_mpi) MPI_Finalize();
#endif
    g_mpi = 0;
}

const char *dist_library(void) {
#ifdef EXITRL_HAVE_MPI
    static char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS) return "MPI (version unknown)";
    for (int i = 0; i < len; i++) /* the first line is enough */
        if (lib[i] == '\n' || lib[i] == ',') lib[i] = 0;
    return lib;
#else
    return "none (built without MPI)";
#endif
}

int dist_rank(void) { return g_rank; }
int dist_local_rank(void) { return g_local_rank; }
int dist_size(void) { return g_size; }
int dist_is_root(void) { return g_rank == 0; }
const char *dist_note(void) {
    static char note[40];
    if (g_size == 1) return "";
    snprintf(note, sizeof note, ", %d MPI ranks", g_size);
    return note;
}

#ifdef EXITRL_HAVE_MPI
/* In place: buf[0..n) of `type` (elem bytes each) summed over ranks, in pieces (MPI counts are int). */
static void sum_in_place(void *buf, size_t n, size_t elem, MPI_Datatype type, const char *what) {
    if (!g_mpi || g_size == 1) return;
    for (size_t off = 0; off < n;) {
        int count = n - off > (size_t)(1 << 30) ? 1 << 30 : (int)(n - off);
        check(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, count, type, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce", what);
        off += (size_t)count;
    }
}
#endif

void dist_sum_f32(float *buf, size_t n, const char *what) {
#ifdef EXITRL_HAVE_MPI
    sum_in_place(buf, n, sizeof *buf, MPI_FLOAT, what);
#else
    (void)buf, (void)n, (void)what;
#endif
}

void dist_sum_f64(double *buf, size_t n, const char *what) {
#ifdef EXITRL_HAVE_MPI
    sum_in_place(buf, n, sizeof *buf, MPI_DOUBLE, what);
#else
    (void)buf, (void)n, (void)what;
#endif
}

int dist_or(int flags, const char *what) {
#ifdef EXITRL_HAVE_MPI
    if (g_mpi && g_size > 1)
        check(MPI_Allreduce(MPI_IN_PLACE, &flags, 1, MPI_INT, MPI_BOR, MPI_COMM_WORLD), "MPI_Allreduce", what);
#else
    (void)what;
#endif
    return flags;
}

void dist_bcast(void *buf, size_t bytes, const char *what) {
#ifdef EXITRL_HAVE_MPI
    if (!g_mpi || g_size == 1) return;
    for (size_t off = 0; off < bytes;) {
        int count = bytes - off > (size_t)(1 << 30) ? 1 << 30 : (int)(bytes - off);
        check(MPI_Bcast((char *)buf + off, count, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast", what);
        off += (size_t)count;
    }
#else
    (void)buf, (void)bytes, (void)what;
#endif
}

int dist_check_same(const void *bytes, size_t n, const char *what) {
#ifdef EXITRL_HAVE_MPI
    if (!g_mpi || g_size == 1) return 0;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)bytes)[i]) * 0x100000001b3ull;
    uint64_t lo = h, hi = h;
    check(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce", what);
    check(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce", what);
    if (lo == hi) return 0;
    if (g_rank == 0) fprintf(stderr, "exitrl: the %d ranks disagree on %s; every rank must run the same command\n", g_size, what);
    return -1;
#else
    (void)bytes, (void)n, (void)what;
    return 0;
#endif
}

void dist_allgather(void *buf, size_t item_bytes, int64_t n, const char *what) {
#ifdef EXITRL_HAVE_MPI
    if (!g_mpi || g_size == 1) return;
    if ((double)n * item_bytes > 2147483647.0) {
        fprintf(stderr, "exitrl: rank %d: %s: %lld items of %zu bytes exceed one MPI message\n", g_rank, what,
                (long long)n, item_bytes);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int *counts = malloc(sizeof(int) * 2 * (size_t)g_size), *displs = counts + g_size;
    if (!counts) {
        fprintf(stderr, "exitrl: rank %d: out of memory\n", g_rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int r = 0; r < g_size; r++) {
        int64_t lo = n * r / g_size, hi = n * (r + 1) / g_size;
        displs[r] = (int)(lo * (int64_t)item_bytes);
        counts[r] = (int)((hi - lo) * (int64_t)item_bytes);
    }
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_BYTE, MPI_COMM_WORLD),
          "MPI_Allgatherv", what);
    free(counts);
#else
    (void)buf, (void)item_bytes, (void)n, (void)what;
#endif
}

void dist_sum_grads(gpt_model *m, const char *what) {
    if (g_size == 1) return;
    const double t0 = now();
    exitrl_backend *be = m->backend;
    char why[256] = "";
    if (be->allreduce_sum_f32 && be->comm_init && be->comm_unique_id) {
        /* On the device (NCCL): the communicator is made on first use, bootstrapped over MPI. */
        static exitrl_backend *joined; /* the backend whose communicator is up */
        if (joined != be) {
            unsigned char id[EXITRL_COMM_ID_BYTES] = {0};
            int failed = g_rank == 0 && be->comm_unique_id(be, id, why, sizeof why);
            if (dist_or(failed, "communicator id")) fail_backend("comm_unique_id", what, why);
            dist_bcast(id, sizeof id, "communicator id");
            if (be->comm_init(be, id, g_rank, g_size, why, sizeof why)) fail_backend("comm_init", what, why);
            joined = be;
        }
        if (be->allreduce_sum_f32(be, m->grads, m->num_params, why, sizeof why))
            fail_backend("allreduce_sum_f32", what, why);
        be->sync(be); /* so that the time below is the collective's */
        g_comm_seconds += now() - t0;
        return;
    }
    float *host = malloc(sizeof(float) * m->num_params);
    if (!host) {
        fprintf(stderr, "exitrl: rank %d: out of host memory for %zu gradients\n", g_rank, m->num_params);
        exit(1);
    }
    be->download(be, host, m->grads, sizeof(float) * m->num_params);
    dist_sum_f32(host, m->num_params, what);
    be->upload(be, m->grads, host, sizeof(float) * m->num_params);
    free(host);
    g_comm_seconds += now() - t0;
}

double dist_comm_seconds(void) { return g_comm_seconds; }

void dist_share(int64_t n, int64_t *lo, int64_t *hi) {
    *lo = n * g_rank / g_size;
    *hi = n * (g_rank + 1) / g_size;
}
