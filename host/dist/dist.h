/* Data parallelism across processes: `mpirun -np N exitrl <command> ...` runs N ranks of one command.
 *
 * Contract
 * - One process without mpirun is rank 0 of 1, built with MPI or not: nothing below does any work
 *   then, and every command behaves exactly as a one-process build does. A build without MPI
 *   (EXITRL_HAVE_MPI unset) that is launched by mpirun says so and stops (dist_init).
 * - Collectives are called by every rank in the same order with the same sizes (the commands keep
 *   all ranks in lockstep: same config, same RNG streams, same loop). `what` names the data in
 *   messages ("pretrain gradients").
 * - Faults: a collective that fails prints "exitrl: rank R of N: <call> (<what>) failed: <reason>"
 *   and aborts every rank (MPI_Abort); mpirun reports a rank that died. Checkpoints are written by
 *   rank 0 alone and atomically (model/checkpoint.h), so the last one stays loadable.
 * - Only rank 0 writes files (metrics, checkpoints, plots) and progress lines: commands ask
 *   dist_is_root().
 * - Sums over ranks (MPI_SUM) add in an order of MPI's choosing, so they may differ from a
 *   one-process sum in the last bits; tests/cli_mpi.sh states the tolerances. */
#ifndef EXITRL_DIST_H
#define EXITRL_DIST_H
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* Joins the MPI job when launched by mpirun/srun (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK set),
 * else stays rank 0 of 1 without touching MPI. Call first in main; returns 0, or 1 after a message
 * (MPI failed to start, or launched by mpirun without MPI support built in). */
int dist_init(int *argc, char ***argv);
/* Leaves the MPI job (no-op without one). Call last in main, on every rank. */
void dist_finalize(void);

int dist_rank(void);    /* this process's rank, 0..size-1 */
int dist_size(void);    /* number of ranks (1 without MPI) */
int dist_local_rank(void); /* this rank's place among the ranks on its machine: its GPU's index */
int dist_is_root(void); /* rank 0: the rank that writes files and progress */
const char *dist_note(void); /* ", 2 MPI ranks" for start-up lines; "" for one process */
/* The MPI library this build uses ("Open MPI v4.1.4"), or "none (built without MPI)". */
const char *dist_library(void);

/* In place: buf[i] = sum over ranks of buf[i]. */
void dist_sum_f32(float *buf, size_t n, const char *what);
void dist_sum_f64(double *buf, size_t n, const char *what);
/* The bitwise OR of flags over ranks: how ranks agree to stop (an interrupt, a failed write). */
int dist_or(int flags, const char *what);
/* bytes from rank 0 into buf on every rank. */
void dist_bcast(void *buf, size_t bytes, const char *what);
/* Checks that bytes[0..n) are equal on every rank (a 64-bit hash compared over ranks); returns 0,
 * or -1 on every rank after rank 0 printed "ranks disagree on <what>". */
int dist_check_same(const void *bytes, size_t n, const char *what);
/* buf holds n items of item_bytes, of which this rank filled its dist_share; afterwards every rank
 * holds all n (each share from its owner). */
void dist_allgather(void *buf, size_t item_bytes, int64_t n, const char *what);
/* m->grads = their sum over ranks (every rank then holds the same gradient): with the backend's
 * collectives where it has them (the CUDA backend built with NCCL: the communicator is made on the
 * first call, its id broadcast over MPI), else through host memory (MPI_Allreduce on fp32). */
void dist_sum_grads(gpt_model *m, const char *what);
/* Seconds spent in dist_sum_grads so far (the gradient all-reduce and its copies): the metrics'
 * comm_ms. */
double dist_comm_seconds(void);
/* The share [*lo, *hi) of n items that this rank owns: contiguous, in rank order, sizes differing
 * by at most one. */
void dist_share(int64_t n, int64_t *lo, int64_t *hi);
#endif
