/* factorize.h — FactorLLM's split of a dense SwiGLU FFN into N experts
 * (DESIGN §6). Neuron i of the FFN is row i of gate_proj and up_proj (F×d)
 * and column i of down_proj (d×F). The neurons are split into N equal groups
 * and expert e gets the rows/columns of group e, so with every expert
 * selected at weight 1 the experts' outputs sum to the dense FFN exactly.
 * How neurons are grouped (factor.method):
 *   contiguous  group e = neurons e·F/N … (e+1)·F/N − 1 (the reference code)
 *   random      a seeded permutation (Philox: seed, MOLT_RNG_FACTOR, layer)
 *   cluster     neurons embedded by the top-r left singular vectors of the
 *               stacked [gate_proj | up_proj] (F × 2d), scaled by their
 *               singular values, computed with ScaLAPACK over every rank of
 *               comm (molt_svd_dist); then balanced k-means into N groups of
 *               F/N (molt_kmeans_balanced, seeded). Groups are numbered by
 *               their smallest neuron.
 * Within a group neurons keep ascending order. */
#ifndef MOLT_FACTORIZE_H
#define MOLT_FACTORIZE_H
#include <mpi.h>
#include <stdint.h>

typedef enum {
    MOLT_FACTOR_CONTIGUOUS = 0,
    MOLT_FACTOR_RANDOM,
    MOLT_FACTOR_CLUSTER
} molt_factor_method;

typedef struct {
    int method;   /* molt_factor_method */
    int svd_rank; /* cluster: embedding width r; 0 = min(64, 2d, F) */
    int iters;    /* cluster: k-means rounds */
    uint64_t seed;
} molt_factor_opts;

/* Group the F neurons of one layer's FFN into N equal experts: perm[e·F/N +
 * j] is the j-th neuron of expert e. gate and up are F×d row-major. F must be
 * a multiple of N (else MOLT_ERR_INPUT). Collective over comm for `cluster`
 * (every rank passes the same weights and gets the same perm); the other
 * methods are local. */
int molt_factor_groups(MPI_Comm comm, const molt_factor_opts *o, int layer, const float *gate,
                       const float *up, int F, int d, int N, int *perm);

/* Expert e's weights from the dense ones: gate_e/up_e (F/N × d) are rows
 * perm[e·F/N …] of gate/up, down_e (d × F/N) the same columns of down (d×F). */
void molt_factor_slice(const int *perm, int e, int F, int d, int N, const float *gate,
                       const float *up, const float *down, float *gate_e, float *up_e,
                       float *down_e);

#endif
