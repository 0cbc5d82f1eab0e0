/* svd_check — the distributed SVD (molt_svd_dist, ScaLAPACK pdgesvd on every
 * rank of MPI_COMM_WORLD) against LAPACK on one process, for tests/mpi/svd_dist.sh.
 *   mpirun -np P svd_check [WEIGHTS.h5 DATASET ROWS COLS]
 * With a file, its ROWS x COLS float dataset (a trained weight matrix) is
 * checked too.
 * For each case, a float matrix built from a fixed seed (the same on every
 * rank): Gaussian 200x96 and 96x200, a decaying spectrum G1 diag(0.8^j) G2'
 * (150x70), odd sizes 37x53 (no size a multiple of the block) and a tiny
 * 5x3 and a 1x7 row (some ranks hold no block at np 4). Rank 0 computes every singular
 * triplet with molt_svd_local (dgesvd) and picks k in [q/8, q/2] at the
 * largest relative spectral gap, so the top-k subspaces are well defined.
 * Checks:
 *   S       |S_dist - S_lapack| / S_lapack        <= 1e-4 (each of the top k)
 *   angles  largest principal angle between the distributed and the LAPACK
 *           U (and V) top-k subspaces              <= 1e-3 rad
 *   vectors max entry difference of U and VT       <= 1e-6 (sign convention)
 *   orth    max |U'U - I|, |VV' - I|               <= 1e-10
 *   ranks   S, U, VT bitwise identical on every rank
 *   sgesvd  LAPACK single precision against the double S: relative to each
 *           value >= 1e-2 s_1, and relative to s_1 for all  <= 1e-4
 *   control the angle check can fail: top-k against triplets 2..k+1 of the
 *           reference is >= 0.5 rad
 *   groups  even and odd ranks, each on its own communicator and matrix at
 *           the same time (37x53, k 6): S and U as LAPACK's (1e-4, 1e-6)
 *   refuse  k > min(m, n), and a different k on each rank: MOLT_ERR_INPUT on
 *           every rank, no hang
 * Prints the grid, block size, k and every measured error; exits 1 on any
 * violation (on every rank). */
#include <cblas.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linalg/scalapack.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/linalg.h"
#include "molt/rng.h"

typedef struct {
    const char *name;
    int m, n, decay;
    const float *given; /* a matrix read from a file (a trained weight), or NULL */
} svd_case;

static void fill_normal(double *x, size_t n, uint64_t seed, uint32_t stream) {
    molt_rng r;
    molt_rng_init(&r, seed, MOLT_RNG_TEST, stream, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = molt_rng_normal(&r);
}

/* Gaussian, or G1 (m×q) diag(0.8^j) G2ᵀ (q×n) for a decaying spectrum. */
static void build(const svd_case *c, uint64_t seed, float *A) {
    const int m = c->m, n = c->n, q = m < n ? m : n;
    if (c->given) {
        memcpy(A, c->given, sizeof(float) * (size_t)m * n);
        return;
    }
    if (!c->decay) {
        double *g = malloc(sizeof(double) * m * n);
        fill_normal(g, (size_t)m * n, seed, 0);
        for (int i = 0; i < m * n; i++)
            A[i] = (float)g[i];
        free(g);
        return;
    }
    double *g1 = malloc(sizeof(double) * m * q), *g2 = malloc(sizeof(double) * n * q);
    fill_normal(g1, (size_t)m * q, seed, 1);
    fill_normal(g2, (size_t)n * q, seed, 2);
    for (int i = 0; i < m; i++)
        for (int c2 = 0; c2 < n; c2++) {
            double s = 0;
            for (int j = 0; j < q; j++)
                s += g1[i * q + j] * pow(0.8, j) * g2[c2 * q + j];
            A[i * n + c2] = (float)s;
        }
    free(g1), free(g2);
}

/* k in [max(1, q/8), max(1, q/2)] with the largest relative gap
 * (s_k - s_k+1) / s_k: a subspace of several vectors, well separated. */
static int pick_k(const double *S, int q) {
    const int lo = q / 8 > 1 ? q / 8 : 1, hi = q / 2 > lo ? q / 2 : lo;
    int best = lo;
    double gap = -1;
    for (int k = lo; k <= hi && k < q; k++) {
        const double g = (S[k - 1] - S[k]) / S[k - 1];
        if (g > gap) gap = g, best = k;
    }
    return best;
}

static double max_angle(const double *X, const double *Y, int m, int k) {
    double *ang = malloc(sizeof(double) * k), a = INFINITY;
    if (molt_principal_angles(X, m, k, Y, k, ang) == MOLT_OK) a = ang[k - 1];
    free(ang);
    return a;
}

/* Rows [0, k) of the row-major k'×n VT as the columns of V (n×k). */
static void vt_to_v(const double *VT, int k, int n, double *V) {
    for (int j = 0; j < k; j++)
        for (int c = 0; c < n; c++)
            V[c * k + j] = VT[j * n + c];
}

/* max |XᵀX − I| over the k columns of the row-major r×k X. */
static double orth_err(const double *X, int r, int k) {
    double *G = malloc(sizeof(double) * k * k), e = 0;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, r, 1.0, X, k, X, k, 0.0, G, k);
    for (int i = 0; i < k * k; i++)
        e = fmax(e, fabs(G[i] - (i % (k + 1) == 0)));
    free(G);
    return e;
}

/* Singular values of A by LAPACK sgesvd (single precision). */
static int sgesvd_values(const float *A, int m, int n, float *s) {
    const int one = 1;
    float *a = malloc(sizeof(float) * m * n), query = 0, dummy = 0, *work = NULL;
    int lwork = -1, info = 0;
    memcpy(a, A, sizeof(float) * m * n); /* read as Aᵀ: the same values */
    sgesvd_("N", "N", &n, &m, a, &n, s, &dummy, &one, &dummy, &one, &query, &lwork, &info, 1, 1);
    if (info == 0) {
        lwork = (int)query + 1;
        work = malloc(sizeof(float) * lwork);
        sgesvd_("N", "N", &n, &m, a, &n, s, &dummy, &one, &dummy, &one, work, &lwork, &info, 1, 1);
    }
    free(a), free(work);
    return info;
}

/* The reference: every triplet of A by dgesvd (molt_svd_local). */
typedef struct {
    double *S, *U, *VT; /* q, m×q, q×n */
} svd_ref;

/* Rank 0's checks of the distributed top-k (S, U, VT) against the reference;
 * returns the number of violations. */
static int report_case(const svd_case *c, int np, const float *A, const svd_ref *ref, int k,
                       const double *S, const double *U, const double *VT, int ranks_differ) {
    const int m = c->m, n = c->n, q = m < n ? m : n;
    double es = 0, eu = 0, ev = 0, ef_rel = 0, ef_norm = 0;
    double *Ul = malloc(sizeof(double) * m * k), *Ul1 = malloc(sizeof(double) * m * k);
    double *V = malloc(sizeof(double) * n * k), *Vl = malloc(sizeof(double) * n * k);
    float *sf = malloc(sizeof(float) * q);
    for (int j = 0; j < k; j++)
        es = fmax(es, fabs(S[j] - ref->S[j]) / ref->S[j]);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++) {
            Ul[i * k + j] = ref->U[i * q + j];
            Ul1[i * k + j] = j + 1 < q ? ref->U[i * q + j + 1] : 0;
            eu = fmax(eu, fabs(U[i * k + j] - Ul[i * k + j]));
        }
    for (int i = 0; i < k * n; i++)
        ev = fmax(ev, fabs(VT[i] - ref->VT[i]));
    vt_to_v(VT, k, n, V);
    vt_to_v(ref->VT, k, n, Vl);
    const double au = max_angle(U, Ul, m, k), av = max_angle(V, Vl, n, k);
    const double control = k < q ? max_angle(U, Ul1, m, k) : INFINITY;
    const double orth = fmax(orth_err(U, m, k), orth_err(V, n, k));
    /* single against double: the distributed top k, the reference beyond */
    if (sgesvd_values(A, m, n, sf) != 0) ef_rel = ef_norm = INFINITY;
    for (int j = 0; j < q; j++) {
        const double sd = j < k ? S[j] : ref->S[j], d = fabs((double)sf[j] - sd);
        ef_norm = fmax(ef_norm, d / S[0]);
        if (sd >= 1e-2 * S[0]) ef_rel = fmax(ef_rel, d / sd);
    }
    int pr, pc, nb;
    molt_svd_grid(np, m, n, &pr, &pc, &nb);
    printf("  %-13s grid %dx%d nb %2d k %2d: S %.1e  angle U %.1e V %.1e  |dU| %.1e |dVT| %.1e"
           "  orth %.1e  sgesvd %.1e (vs s1 %.1e)  control %.2f  ranks %s\n",
           c->name, pr, pc, nb, k, es, au, av, eu, ev, orth, ef_rel, ef_norm, control,
           ranks_differ ? "DIFFER" : "identical");
    free(Ul), free(Ul1), free(V), free(Vl), free(sf);
    return !(es <= 1e-4) + !(au <= 1e-3) + !(av <= 1e-3) + !(eu <= 1e-6) + !(ev <= 1e-6) +
           !(orth <= 1e-10) + !(ef_rel <= 1e-4) + !(ef_norm <= 1e-4) + !(control >= 0.5) +
           ranks_differ;
}

/* 1 when some rank's (S, U, VT) differ in any bit from rank 0's (on rank 0). */
static int ranks_differ(int m, int n, int k, const double *S, const double *U, const double *VT) {
    const size_t cnt = (size_t)k + (size_t)m * k + (size_t)k * n;
    double *mine = malloc(sizeof(double) * cnt), *root = malloc(sizeof(double) * cnt);
    memcpy(mine, S, sizeof(double) * k);
    memcpy(mine + k, U, sizeof(double) * m * k);
    memcpy(mine + k + (size_t)m * k, VT, sizeof(double) * k * n);
    memcpy(root, mine, sizeof(double) * cnt);
    MPI_Bcast(root, (int)cnt, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    int differ = memcmp(mine, root, sizeof(double) * cnt) != 0, any = 0;
    MPI_Reduce(&differ, &any, 1, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
    free(mine), free(root);
    return any;
}

/* One case on every rank; returns the number of violations (on rank 0). */
static int check_case(const svd_case *c, int rank, int np) {
    const int m = c->m, n = c->n, q = m < n ? m : n;
    float *A = malloc(sizeof(float) * m * n);
    svd_ref ref = {malloc(sizeof(double) * q), malloc(sizeof(double) * m * q),
                   malloc(sizeof(double) * q * n)};
    int k = 1, bad = 0;
    build(c, 1234, A);
    if (rank == 0) {
        bad = molt_svd_local(A, m, n, q, ref.S, ref.U, ref.VT) != MOLT_OK;
        if (!bad) k = pick_k(ref.S, q);
    }
    MPI_Bcast(&k, 1, MPI_INT, 0, MPI_COMM_WORLD);
    double *S = malloc(sizeof(double) * k), *U = malloc(sizeof(double) * m * k);
    double *VT = malloc(sizeof(double) * k * n);
    if (molt_svd_dist(MPI_COMM_WORLD, A, m, n, k, S, U, VT) != MOLT_OK) {
        if (rank == 0) printf("  %-13s molt_svd_dist failed\n", c->name);
        bad = 1;
    } else {
        const int differ = ranks_differ(m, n, k, S, U, VT);
        if (rank == 0 && !bad) bad = report_case(c, np, A, &ref, k, S, U, VT, differ);
    }
    free(A), free(ref.S), free(ref.U), free(ref.VT), free(S), free(U), free(VT);
    return bad;
}

/* Two groups (even and odd world ranks) each decompose their own matrix on
 * their own communicator at the same time; every rank checks its result
 * against LAPACK. Returns the number of violations (on world rank 0). */
static int check_subcomms(int rank, int np) {
    const int m = 37, n = 53, k = 6, group = rank % 2;
    const svd_case c = {"group", m, n, 0, NULL};
    MPI_Comm sub;
    int gnp = 1, bad = 0, all = 0;
    MPI_Comm_split(MPI_COMM_WORLD, group, rank, &sub);
    MPI_Comm_size(sub, &gnp);
    float *A = malloc(sizeof(float) * m * n);
    double S[6], Sl[6], *U = malloc(sizeof(double) * m * k), *Ul = malloc(sizeof(double) * m * k);
    double *VT = malloc(sizeof(double) * k * n), *VTl = malloc(sizeof(double) * k * n);
    double err[2] = {0, 0}, worst[2] = {0, 0};
    build(&c, 99 + (uint64_t)group, A);
    bad = molt_svd_dist(sub, A, m, n, k, S, U, VT) != MOLT_OK ||
          molt_svd_local(A, m, n, k, Sl, Ul, VTl) != MOLT_OK;
    for (int j = 0; j < k && !bad; j++)
        err[0] = fmax(err[0], fabs(S[j] - Sl[j]) / Sl[j]);
    for (int i = 0; i < m * k && !bad; i++)
        err[1] = fmax(err[1], fabs(U[i] - Ul[i]));
    bad += !(err[0] <= 1e-4) + !(err[1] <= 1e-6);
    MPI_Reduce(err, worst, 2, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&bad, &all, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    int pr, pc, nb;
    molt_svd_grid(gnp, m, n, &pr, &pc, &nb);
    if (rank == 0)
        printf("  %d group(s) of %d rank(s), grid %dx%d, own matrices at once: S %.1e |dU| %.1e\n",
               np > 1 ? 2 : 1, gnp, pr, pc, worst[0], worst[1]);
    MPI_Comm_free(&sub);
    free(A), free(U), free(Ul), free(VT), free(VTl);
    return all;
}

/* Bad or mismatched arguments fail on every rank with MOLT_ERR_INPUT
 * instead of hanging a collective: k > min(m, n) everywhere, and (np > 1)
 * a different k on each rank. Returns the number of violations (any rank). */
static int check_refusals(int rank, int np) {
    float A[12] = {0};
    double S[4], U[16], VT[16];
    if (rank == 0) printf("  refusals (the errors below are expected):\n");
    fflush(stdout);
    int bad = molt_svd_dist(MPI_COMM_WORLD, A, 4, 3, 4, S, U, VT) != MOLT_ERR_INPUT;
    if (np > 1)
        bad += molt_svd_dist(MPI_COMM_WORLD, A, 4, 3, 1 + rank % 3, S, U, VT) != MOLT_ERR_INPUT;
    int all = 0;
    MPI_Allreduce(&bad, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("  refusals: %s\n", all ? "FAILED" : "every rank refused");
    return rank == 0 ? all : 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, np = 1, bad = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    const svd_case cases[] = {{"gauss 200x96", 200, 96, 0, NULL}, {"gauss 96x200", 96, 200, 0, NULL},
                              {"decay 150x70", 150, 70, 1, NULL}, {"gauss 37x53", 37, 53, 0, NULL},
                              {"tiny 5x3", 5, 3, 0, NULL},        {"row 1x7", 1, 7, 0, NULL}};
    if (rank == 0) printf("svd_check on %d rank(s)\n", np);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        bad += check_case(&cases[i], rank, np);
    if (argc == 5) { /* a trained weight matrix, read by every rank */
        int m = atoi(argv[3]), n = atoi(argv[4]);
        float *W = m > 0 && n > 0 ? malloc(sizeof(float) * (size_t)m * n) : NULL;
        hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
        int ok = W && f >= 0 && molt_h5_read_f32(f, argv[1], argv[2], W, m, n) == MOLT_OK;
        if (f >= 0) H5Fclose(f);
        if (ok) {
            const svd_case trained = {"trained", m, n, 0, W};
            bad += check_case(&trained, rank, np);
        } else {
            bad += rank == 0;
            if (rank == 0) printf("  trained: cannot read %s %s (%dx%d)\n", argv[1], argv[2], m, n);
        }
        free(W);
    }
    bad += check_subcomms(rank, np);
    bad += check_refusals(rank, np);
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("svd_check: %s (%d violation(s))\n", bad ? "FAILED" : "ok", bad);
    MPI_Finalize();
    return bad ? 1 : 0;
}
