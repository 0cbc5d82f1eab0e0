/* coll.h — MPI collectives over buffers of any length.
 *
 * MPI counts and displacements are int: a buffer of more than INT_MAX
 * elements (8 GiB of floats: the gradients of a full 7B fine-tune) cannot be
 * passed in one call. These wrappers take size_t lengths and never cast one
 * unchecked:
 *   - reductions and broadcasts go in chunks of at most molt_coll_chunk()
 *     elements, one collective per chunk, in the same order on every rank;
 *   - gathers of per-rank blocks move whole units (one expert's tensor) of a
 *     contiguous datatype once the element counts would pass the limit, so
 *     their counts and displacements are unit counts.
 * An element-wise sum is the same chunked or not whenever the MPI library's
 * per-element summation order does not depend on the message length: always
 * with two ranks (a + b == b + a exactly), and for tree and recursive-doubling
 * algorithms. Test builds (MOLT_FAULT_INJECTION) read the limit from
 * MOLT_FAULT_MPI_CHUNK so a test can run the chunked paths at small sizes.
 * Every function is collective over `comm` and returns a molt error code. */
#ifndef MOLT_COLL_H
#define MOLT_COLL_H
#include <mpi.h>
#include <stddef.h>

/* The most elements one MPI call moves: INT_MAX (lower in test builds). */
size_t molt_coll_chunk(void);

/* buf[0..n) summed over comm, in place on every rank. */
int molt_allreduce_sum_f32(float *buf, size_t n, MPI_Comm comm);
int molt_allreduce_sum_f64(double *buf, size_t n, MPI_Comm comm);
/* buf[0..n) summed over comm into root's buf (others' buf is unchanged). */
int molt_reduce_sum_f64(double *buf, size_t n, int root, MPI_Comm comm);
/* root's n bytes to every rank. */
int molt_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm);

/* Rank k of comm holds units[k] units of `unit` floats each, contiguous;
 * all of them, in rank order, land in `all` on every rank. */
int molt_allgather_units_f32(const float *mine, float *all, const int *units, size_t unit,
                             MPI_Comm comm);
/* `all` holds every rank's units in rank order (as allgather makes them);
 * their sum over comm of rank k's units lands in rank k's `mine`. `tmp`:
 * scratch of molt_reduce_scatter_scratch(units, unit, P) floats (chunked path
 * only; may be NULL when that is 0). */
int molt_reduce_scatter_units_f32(const float *all, float *mine, const int *units, size_t unit,
                                  float *tmp, MPI_Comm comm);
size_t molt_reduce_scatter_scratch(const int *units, size_t unit, int P);

#endif
