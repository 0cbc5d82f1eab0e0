/* a2a.h — the token exchange of one MoE site under expert parallelism
 * (DESIGN §5 steps 2–5), split into chunks that overlap communication with
 * expert compute.
 *
 * The sender's rows are in plan order: chunk-major, then destination ep rank,
 * then the destination's local expert, then token (molt_plan_build). One
 * MPI_Alltoall tells every rank how many rows of each chunk it receives for
 * each of its local experts. molt_a2a_run then, per chunk c:
 *   MPI_Ialltoallv rows to their owners (chunk c+1 is posted before chunk c's
 *   experts run) -> permute to expert-major (local expert, source, token) ->
 *   compute(c) -> permute back -> MPI_Ialltoallv the results to their senders,
 * and returns when every result is back in plan order. With one rank (P = 1)
 * nothing moves: compute runs on the caller's rows in place.
 * Counts are floats while they fit MPI's int, else rows of a contiguous
 * type (coll.h). Buffers are sized once at creation; a step allocates
 * nothing. Every rank of
 * the communicator calls set_counts and run in the same order, also with zero
 * rows. */
#ifndef MOLT_A2A_H
#define MOLT_A2A_H
#include <mpi.h>

/* Compute chunk c: X rows (width win) -> Y rows (width wout), expert-major;
 * local expert l owns rows [eoff[l], eoff[l+1]) of X and Y (absolute rows).
 * Returns a molt error code (an error aborts the job: peers wait for this
 * rank inside the exchange). */
typedef int (*molt_a2a_compute)(void *ctx, int chunk, const float *X, float *Y, const int *eoff);

typedef struct {
    MPI_Comm comm;
    int P, me, C;           /* ranks, my rank, chunks */
    int nl, nlmax;          /* my local experts; the most any rank holds */
    int cap_s, cap_r, wmax; /* rows sent / received at most; widest row */
    int *nl_of;             /* [P] local experts of each rank */
    int *scnt, *rcnt;       /* [P][C][nlmax] rows per (peer, chunk, expert) sent / received */
    int *s_off;             /* [C*P+1] plan-order row where (chunk, dest) starts */
    int *r_off;             /* [C*P+1] staging row where (chunk, source) starts */
    int *eoff;              /* [C][nl+1] expert-major rows of each local expert per chunk */
    int *perm;              /* [cap_r] staging row -> expert-major row */
    int *ic[4]; /* element counts/displs: send counts, send displs, recv counts, recv displs */
    int *oc[4]; /* the same for the return direction */
    float *stage_r, *stage_s; /* [cap_r * wmax] each */
    MPI_Request *req;         /* [2C] */
    int recv_rows;            /* rows received this round */
    MPI_Datatype rt[4];       /* row types (width rtw[i]) once counts pass MPI's int */
    int rtw[4], nrt;
    double t_comm;            /* seconds inside MPI (wait + blocking calls), accumulated */
} molt_a2a;

/* P ranks in `comm` (P = 1: local, comm unused); nl_of[k] experts on rank k. */
int molt_a2a_create(molt_a2a *a, MPI_Comm comm, int P, int me, int chunks, const int *nl_of,
                    int cap_s, int cap_r, int wmax);
void molt_a2a_free(molt_a2a *a);
/* Exchange row counts: scnt_send[(c*P + k)*nlmax + l] = rows of chunk c for
 * rank k's local expert l (from the plan). Fails if more rows would arrive
 * than cap_r. */
int molt_a2a_set_counts(molt_a2a *a, const int *scnt_send);
/* Plan-order row offsets of (chunk, dest) for the caller's rows. */
static inline int molt_a2a_send_rows(const molt_a2a *a) {
    return a->s_off[a->C * a->P];
}
/* Move `send` (width win) to the owners, compute, and bring the results
 * (width wout) back into `ret`. X, Y: the owner-side buffers (cap_r rows of
 * win / wout), kept by the caller for backward. With P = 1, compute runs on
 * (send, ret) directly and X, Y are unused. */
int molt_a2a_run(molt_a2a *a, const float *send, int win, float *X, float *Y, int wout, float *ret,
                 const int *plan_eoff, molt_a2a_compute fn, void *ctx);
/* The cost model's constants, measured over `ep_comm` (every expert group)
 * and agreed over `world` (the largest): alpha = seconds per message of an
 * all-to-all (1 float per peer, divided by P-1), beta = seconds per byte sent
 * (64 KiB per peer, minus the latency part). Collective over world. */
int molt_a2a_probe(MPI_Comm ep_comm, MPI_Comm world, double *alpha, double *beta);
/* Let pending nonblocking transfers advance (call between expert GEMMs). */
void molt_a2a_progress(molt_a2a *a);

#endif
