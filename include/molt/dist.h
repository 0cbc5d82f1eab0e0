/* dist.h — process groups of the data-parallel × expert-parallel layout
 * (DESIGN §5) and the rule that places experts on ranks.
 *
 * World size W = dp × ep. World rank r sits at ep rank r mod ep in expert group
 * r div ep:
 *   ep_comm   ranks {g·ep, …, g·ep + ep − 1}: consecutive ranks (one node, on a
 *             block-mapped launch) share one copy of the experts;
 *   edp_comm  ranks {k, k + ep, k + 2·ep, …}: the ranks holding the same
 *             experts (expert gradients are all-reduced here);
 *   world     everything else (routers, shared LoRA, norms, base in full mode).
 * Expert e of a layer with N experts lives on ep rank e mod ep at local slot
 * e div ep (round-robin). When ep does not divide N, ranks k < N mod ep hold
 * one expert more, and ranks k >= N may hold none at that layer (MoLA's
 * per-layer counts); they still enter every collective. */
#ifndef MOLT_DIST_H
#define MOLT_DIST_H
#include <mpi.h>
#include <stddef.h>

typedef struct {
    MPI_Comm world, ep_comm, edp_comm; /* ep_comm/edp_comm owned (MPI_COMM_NULL if absent) */
    int rank, size;                    /* in world */
    int dp, ep, ep_rank, dp_rank;      /* dp_rank = r div ep: the expert group's index */
} molt_layout;

/* The layout of `ep` expert-parallel ranks inside `world` (collective over
 * world). Fails with MOLT_ERR_INPUT when ep does not divide the world size. */
int molt_layout_create(molt_layout *lay, MPI_Comm world, int ep);
/* A one-rank layout over MPI_COMM_SELF-like use: no communicators created. */
void molt_layout_single(molt_layout *lay);
void molt_layout_free(molt_layout *lay);
/* "world 4 = dp 2 x ep 2; ep groups {0,1} {2,3}; edp groups {0,2} {1,3}" */
void molt_layout_describe(const molt_layout *lay, char *buf, size_t n);

/* Every rank of comm learns the worst (largest) code of all ranks: for
 * steps that may fail on some ranks only, before anyone goes on. */
int molt_agree(MPI_Comm comm, int rc);
/* A failure on one rank while peers may be inside a collective (a MoE
 * exchange, a step): print a notice and end the whole job (no-op alone). */
void molt_abort_job(MPI_Comm comm, int rc);

static inline int molt_expert_owner(int e, int ep) {
    return e % ep;
}
static inline int molt_expert_slot(int e, int ep) {
    return e / ep;
}
static inline int molt_expert_global(int slot, int ep_rank, int ep) {
    return slot * ep + ep_rank;
}
/* Experts of a layer with N experts held by ep rank k. */
static inline int molt_experts_on(int N, int ep, int k) {
    return N / ep + (k < N % ep);
}

#endif
