/* svd.c — truncated SVD, distributed (ScaLAPACK) and local (LAPACK); see
 * include/molt/linalg.h. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linalg/scalapack.h"
#include "molt/coll.h"
#include "molt/dist.h"
#include "molt/err.h"
#include "molt/linalg.h"

static int imin(int a, int b) {
    return a < b ? a : b;
}

/* Sizes and pointers of one SVD call; the products that become MPI counts or
 * ScaLAPACK dimensions must fit an int. */
static int svd_check_args(const float *A, int m, int n, int k, const double *S, const double *U,
                          const double *VT) {
    if (m < 1 || n < 1 || k < 1 || k > imin(m, n))
        return MOLT_ERROR(MOLT_ERR_INPUT,
                          "svd of a %d x %d matrix asks for k = %d singular triplets "
                          "(need 1 <= k <= min(m, n))",
                          m, n, k);
    if ((long long)m * n > INT_MAX)
        return MOLT_ERROR(MOLT_ERR_INPUT, "svd: a %d x %d matrix has more than %d entries", m, n,
                          INT_MAX);
    if (!A || !S || !U || !VT)
        return MOLT_ERROR(MOLT_ERR_INPUT, "svd: NULL matrix or output array");
    return MOLT_OK;
}

/* The sign convention of linalg.h: the largest-|.| entry of U's column j is
 * positive; row j of VT flips with it. */
static void svd_fix_signs(int m, int n, int k, double *U, double *VT) {
    for (int j = 0; j < k; j++) {
        int at = 0;
        for (int i = 1; i < m; i++)
            if (fabs(U[(size_t)i * k + j]) > fabs(U[(size_t)at * k + j])) at = i;
        if (U[(size_t)at * k + j] >= 0) continue;
        for (int i = 0; i < m; i++)
            U[(size_t)i * k + j] = -U[(size_t)i * k + j];
        for (int c = 0; c < n; c++)
            VT[(size_t)j * n + c] = -VT[(size_t)j * n + c];
    }
}

static int svd_info_rc(const char *routine, int info, int q) {
    if (info == 0) return MOLT_OK;
    if (info < 0)
        return MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: argument %d had an illegal value", routine,
                          -info);
    if (info == q + 1)
        return MOLT_ERROR(MOLT_ERR_INTERNAL,
                          "%s: the ranks computed different singular values (heterogeneous "
                          "nodes or libraries); results not trusted",
                          routine);
    return MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: the bidiagonal QR iteration did not converge (%d)",
                      routine, info);
}

int molt_svd_local(const float *A, int m, int n, int k, double *S, double *U, double *VT) {
    int rc = MOLT_OK;
    double *at = NULL, *s = NULL, *v = NULL, *ut = NULL, *work = NULL;
    MOLT_TRY(svd_check_args(A, m, n, k, S, U, VT));
    const int q = imin(m, n);
    /* LAPACK reads the row-major m×n A as the column-major n×m Aᵀ = V Σ Uᵀ:
     * its left vectors v (n×q, ld n) are our rows of VT, its right vectors
     * ut (q×m, ld q) our columns of U. */
    MOLT_ALLOC(at, (size_t)m * n);
    MOLT_ALLOC(s, q);
    MOLT_ALLOC(v, (size_t)n * q);
    MOLT_ALLOC(ut, (size_t)q * m);
    for (size_t i = 0; i < (size_t)m * n; i++)
        at[i] = A[i];
    int lwork = -1, info = 0;
    double query = 0;
    dgesvd_("S", "S", &n, &m, at, &n, s, v, &n, ut, &q, &query, &lwork, &info, 1, 1);
    MOLT_TRY(svd_info_rc("dgesvd", info, q));
    if ((lwork = lapack_lwork(query)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "svd: dgesvd wants %.0f doubles of workspace", query);
    MOLT_ALLOC(work, lwork);
    dgesvd_("S", "S", &n, &m, at, &n, s, v, &n, ut, &q, work, &lwork, &info, 1, 1);
    MOLT_TRY(svd_info_rc("dgesvd", info, q));
    memcpy(S, s, (size_t)k * sizeof *S);
    memcpy(VT, v, (size_t)k * n * sizeof *VT);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            U[(size_t)i * k + j] = ut[(size_t)i * q + j];
    svd_fix_signs(m, n, k, U, VT);
done:
    free(at), free(s), free(v), free(ut), free(work);
    return rc;
}

void molt_svd_grid(int nranks, int m, int n, int *pr, int *pc, int *nb) {
    int r = 1;
    for (int d = 1; d * d <= nranks; d++)
        if (nranks % d == 0) r = d;
    *pr = r, *pc = nranks / r;
    int b = imin(m, n) / (r > *pc ? r : *pc);
    *nb = b < 1 ? 1 : b > 32 ? 32 : b;
}

/* Block-cyclic map, source process 0: local index l on grid coordinate p of
 * np holds global index g (0-based). */
static int block_l2g(int l, int nb, int p, int np) {
    return ((l / nb) * np + p) * nb + l % nb;
}

/* One rank's share of the distributed problem: a BLACS grid and the local
 * blocks of A (m×n), U (m×q) and VT (q×n), column-major, q = min(m, n). */
typedef struct {
    int ctxt, pr, pc, myr, myc, nb;
    int mp, nq, uq, vp; /* local rows of A and U, columns of A and VT, columns of U, rows of VT */
    int desca[9], descu[9], descvt[9];
    double *a, *u, *vt, *s, *work;
    int lwork;
} svd_dist_part;

/* A pr × pc grid over all ranks of comm, rank r at (r div pc, r mod pc). The
 * BLACS system handle names a private duplicate of comm, so it cannot alias
 * a handle another caller holds for comm; gridinit builds the grid's own
 * communicators from it, after which handle and duplicate are released. */
static int blacs_grid_open(MPI_Comm comm, int pr, int pc, int *ctxt) {
    int rc = MOLT_OK;
    MPI_Comm dup = MPI_COMM_NULL;
    *ctxt = -1;
    MOLT_MPI(MPI_Comm_dup(comm, &dup));
    const int handle = Csys2blacs_handle(dup);
    *ctxt = handle;
    Cblacs_gridinit(ctxt, "Row", pr, pc);
    Cfree_blacs_system_handle(handle);
done:
    if (dup != MPI_COMM_NULL) MPI_Comm_free(&dup);
    return rc;
}

/* Descriptors and local buffers; A's blocks are filled from the full copy.
 * Local only (no communication), so a failure here is agreed on after. */
static int svd_dist_setup(svd_dist_part *p, const float *A, int m, int n) {
    int rc = MOLT_OK, info = 0;
    const int q = imin(m, n), zero = 0;
    if (p->myr < 0 || p->myc < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "svd: this rank is outside the %d x %d BLACS grid", p->pr,
                  p->pc);
    p->mp = numroc_(&m, &p->nb, &p->myr, &zero, &p->pr);
    p->nq = numroc_(&n, &p->nb, &p->myc, &zero, &p->pc);
    p->uq = numroc_(&q, &p->nb, &p->myc, &zero, &p->pc);
    p->vp = numroc_(&q, &p->nb, &p->myr, &zero, &p->pr);
    const int lda = p->mp > 1 ? p->mp : 1, ldvt = p->vp > 1 ? p->vp : 1;
    descinit_(p->desca, &m, &n, &p->nb, &p->nb, &zero, &zero, &p->ctxt, &lda, &info);
    if (info == 0) descinit_(p->descu, &m, &q, &p->nb, &p->nb, &zero, &zero, &p->ctxt, &lda, &info);
    if (info == 0)
        descinit_(p->descvt, &q, &n, &p->nb, &p->nb, &zero, &zero, &p->ctxt, &ldvt, &info);
    if (info != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "svd: descinit argument %d is illegal", -info);
    MOLT_ALLOC(p->a, (size_t)lda * p->nq);
    MOLT_ALLOC(p->u, (size_t)lda * p->uq);
    MOLT_ALLOC(p->vt, (size_t)ldvt * p->nq);
    MOLT_ALLOC(p->s, q);
    for (int lj = 0; lj < p->nq; lj++) {
        const int gj = block_l2g(lj, p->nb, p->myc, p->pc);
        for (int li = 0; li < p->mp; li++) {
            const int gi = block_l2g(li, p->nb, p->myr, p->pr);
            p->a[(size_t)lj * lda + li] = A[(size_t)gi * n + gj];
        }
    }
done:
    return rc;
}

/* pdgesvd: workspace query (collective), then the decomposition. */
static int svd_dist_run(MPI_Comm comm, svd_dist_part *p, int m, int n) {
    int rc = MOLT_OK, info = 0, lwork = -1, one = 1;
    const int q = imin(m, n);
    double query = 0;
    pdgesvd_("V", "V", &m, &n, p->a, &one, &one, p->desca, p->s, p->u, &one, &one, p->descu, p->vt,
             &one, &one, p->descvt, &query, &lwork, &info, 1, 1);
    MOLT_TRY(molt_agree(comm, svd_info_rc("pdgesvd", info, q)));
    p->lwork = lapack_lwork(query);
    if (p->lwork < 0)
        rc = MOLT_ERROR(MOLT_ERR_INPUT, "svd: pdgesvd wants %.0f doubles of workspace", query);
    else if (!(p->work = molt_calloc_at((size_t)p->lwork, sizeof(double), __FILE__, __LINE__)))
        rc = MOLT_ERR_INTERNAL;
    MOLT_TRY(molt_agree(comm, rc));
    pdgesvd_("V", "V", &m, &n, p->a, &one, &one, p->desca, p->s, p->u, &one, &one, p->descu, p->vt,
             &one, &one, p->descvt, p->work, &p->lwork, &info, 1, 1);
    MOLT_TRY(molt_agree(comm, svd_info_rc("pdgesvd", info, q)));
done:
    return rc;
}

/* Every rank writes its blocks of the top k triplets into zeroed full
 * outputs and a sum completes them: each entry has one owner, so the sums
 * are exact and every rank ends with the same bits. S comes from rank 0. */
static int svd_dist_gather(MPI_Comm comm, const svd_dist_part *p, int m, int n, int k, double *S,
                           double *U, double *VT) {
    int rc = MOLT_OK, rank = 0;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    memset(U, 0, (size_t)m * k * sizeof *U);
    memset(VT, 0, (size_t)k * n * sizeof *VT);
    for (int j = 0; j < k; j++)
        S[j] = rank == 0 ? p->s[j] : 0.0;
    const int lda = p->desca[8], ldvt = p->descvt[8];
    for (int lj = 0; lj < p->uq; lj++) {
        const int gj = block_l2g(lj, p->nb, p->myc, p->pc);
        if (gj >= k) break; /* global columns grow with lj */
        for (int li = 0; li < p->mp; li++)
            U[(size_t)block_l2g(li, p->nb, p->myr, p->pr) * k + gj] = p->u[(size_t)lj * lda + li];
    }
    for (int li = 0; li < p->vp; li++) {
        const int gi = block_l2g(li, p->nb, p->myr, p->pr);
        if (gi >= k) break;
        for (int lj = 0; lj < p->nq; lj++)
            VT[(size_t)gi * n + block_l2g(lj, p->nb, p->myc, p->pc)] =
                p->vt[(size_t)lj * ldvt + li];
    }
    MOLT_TRY(molt_allreduce_sum_f64(U, (size_t)m * k, comm));
    MOLT_TRY(molt_allreduce_sum_f64(VT, (size_t)k * n, comm));
    MOLT_TRY(molt_allreduce_sum_f64(S, (size_t)k, comm));
done:
    return rc;
}

/* The arguments are checked on every rank and the verdict agreed on, so a
 * bad or mismatched call fails everywhere instead of hanging in a
 * collective. */
static int svd_dist_agree_args(MPI_Comm comm, const float *A, int m, int n, int k, const double *S,
                               const double *U, const double *VT) {
    int rc = svd_check_args(A, m, n, k, S, U, VT);
    int mine[4] = {m, n, k, rc}, lo[4], hi[4];
    if (MPI_Allreduce(mine, lo, 4, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS ||
        MPI_Allreduce(mine, hi, 4, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return MOLT_ERROR(MOLT_ERR_INTERNAL, "svd: MPI_Allreduce of the arguments failed");
    if (hi[3] != MOLT_OK) return rc ? rc : hi[3];
    if (lo[0] != hi[0] || lo[1] != hi[1] || lo[2] != hi[2])
        return MOLT_ERROR(MOLT_ERR_INPUT,
                          "svd: ranks disagree on the problem: m in [%d, %d], n in [%d, %d], "
                          "k in [%d, %d]",
                          lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]);
    return MOLT_OK;
}

int molt_svd_dist(MPI_Comm comm, const float *A, int m, int n, int k, double *S, double *U,
                  double *VT) {
    int rc = MOLT_OK, size = 1;
    svd_dist_part p = {.ctxt = -1};
    MOLT_TRY(svd_dist_agree_args(comm, A, m, n, k, S, U, VT));
    MOLT_MPI(MPI_Comm_size(comm, &size));
    molt_svd_grid(size, m, n, &p.pr, &p.pc, &p.nb);
    /* pr * pc = size: every rank is in the grid and gets a context. */
    MOLT_TRY(blacs_grid_open(comm, p.pr, p.pc, &p.ctxt));
    int npr = 0, npc = 0;
    Cblacs_gridinfo(p.ctxt, &npr, &npc, &p.myr, &p.myc);
    MOLT_TRY(molt_agree(comm, svd_dist_setup(&p, A, m, n)));
    MOLT_TRY(svd_dist_run(comm, &p, m, n));
    MOLT_TRY(svd_dist_gather(comm, &p, m, n, k, S, U, VT));
    svd_fix_signs(m, n, k, U, VT);
done:
    if (p.ctxt >= 0) Cblacs_gridexit(p.ctxt);
    free(p.a), free(p.u), free(p.vt), free(p.s), free(p.work);
    return rc;
}
