/* linalg.h — dense decompositions for FactorLLM, PiSSA-style LoRA init and
 * expert analysis (DESIGN §6).
 *
 * Matrices are row-major. Singular triplets come in descending order of the
 * singular value, with one sign convention everywhere: in each left singular
 * vector (column of U) the entry of largest magnitude is positive (the first
 * such entry on exact ties), and the matching row of VT flips with it. So U
 * and VT are deterministic functions of A, except where two singular values
 * (or the two largest entries of a U column) agree to rounding.
 * On failure the outputs are unspecified. */
#ifndef MOLT_LINALG_H
#define MOLT_LINALG_H
#include <mpi.h>
#include <stdint.h>

/* Truncated SVD of the m×n matrix A (float, held in full by every rank of
 * comm, e.g. replicated weights) by ScaLAPACK pdgesvd in double precision on
 * a BLACS grid over all ranks of comm (molt_svd_grid). Collective: every rank
 * passes the same A, m, n and k. Every rank gets the k largest singular
 * values S[k] and their vectors U (m×k, columns) and VT (k×n, rows),
 * bitwise identical on all ranks. Costs a full SVD, O(m·n·min(m, n)) flops,
 * divided over the ranks. 1 <= k <= min(m, n), else MOLT_ERR_INPUT (on
 * every rank, as is any failure). BLACS keeps process-wide tables: call it
 * from one thread of a process at a time. */
int molt_svd_dist(MPI_Comm comm, const float *A, int m, int n, int k, double *S, double *U,
                  double *VT);
/* The same on one process with LAPACK dgesvd (reference, small matrices). */
int molt_svd_local(const float *A, int m, int n, int k, double *S, double *U, double *VT);
/* The distribution molt_svd_dist uses on `nranks` ranks: a pr × pc grid with
 * pr * pc = nranks and pr the largest divisor <= sqrt(nranks) (1x1, 1x2,
 * 1x3, 2x2, 2x3, ...), and square nb × nb blocks, nb = 32 or less so that
 * every grid row and column holds a block of a small matrix. */
void molt_svd_grid(int nranks, int m, int n, int *pr, int *pc, int *nb);

/* Principal angles between the column spaces of U1 (m×k1) and U2 (m×k2),
 * 1 <= k1, k2 <= m. The columns need not be orthonormal (both are
 * orthonormalised by QR) but must be linearly independent, else
 * MOLT_ERR_INPUT. Writes the min(k1, k2) angles in radians, ascending, to
 * `angles`: the last one is the largest; 0 for nested subspaces, pi/2 for
 * orthogonal ones. Small angles come from sines and large ones from cosines
 * (Knyazev & Argentati 2002), so both ends are accurate to ~1e-15 rad. */
int molt_principal_angles(const double *U1, int m, int k1, const double *U2, int k2,
                          double *angles);

/* Balanced k-means: splits the n rows of X (n×d) into k clusters of exactly
 * n/k rows each (k must divide n, else MOLT_ERR_INPUT), a local minimum of
 * the sum of squared distances to the cluster means. assign[i] in [0, k) is row i's
 * cluster. Deterministic for a given seed:
 *   init    k-means++ (D² sampling) on the Philox stream (seed,
 *           MOLT_RNG_KMEANS, 0, n, k);
 *   assign  every (row, centre) pair in order of distance, ties by row then
 *           centre index, taken while the row is free and the centre below
 *           n/k; then exchanges between pairs of clusters until no exchange
 *           of rows between any two clusters lowers the cost (each pair's
 *           best exchange, pairs in index order, at most 100 passes); from
 *           round 2 on, the last round's assignment improved the same way is
 *           kept when it costs no more, so the cost never rises;
 *   update  centres = means; stop after `iters` (>= 1) rounds or when the
 *           assignment repeats.
 * Cost per round O(n·k·d) for distances plus O(n·k·log n) for the
 * assignment; memory O(n·k). */
int molt_kmeans_balanced(const float *X, int n, int d, int k, uint64_t seed, int iters,
                         int *assign);

#endif
