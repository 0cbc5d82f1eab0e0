/* test_linalg.c — dense decompositions (include/molt/linalg.h) on one
 * process: the LAPACK SVD against a matrix built from known orthonormal
 * factors and singular values; the ScaLAPACK SVD on a 1x1 grid against it;
 * principal angles of constructed subspaces with known angles (tiny, large,
 * several, unequal dimensions); balanced k-means sizes, blob recovery,
 * determinism and pairwise-exchange optimality; every refused input. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "molt/err.h"
#include "molt/linalg.h"
#include "molt/rng.h"
#include "testutil.h"

static const double PI = 3.14159265358979323846;

static void fill_normal(double *x, size_t n, uint64_t seed) {
    molt_rng r;
    molt_rng_init(&r, seed, MOLT_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = molt_rng_normal(&r);
}

/* Q (row-major m×q, q <= m) with orthonormal columns: modified Gram-Schmidt,
 * twice, on Gaussian columns (independent of the code under test). */
static void random_orthonormal(int m, int q, uint64_t seed, double *Q) {
    fill_normal(Q, (size_t)m * q, seed);
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < q; j++) {
            for (int p = 0; p < j; p++) {
                double dot = 0;
                for (int i = 0; i < m; i++)
                    dot += Q[i * q + p] * Q[i * q + j];
                for (int i = 0; i < m; i++)
                    Q[i * q + j] -= dot * Q[i * q + p];
            }
            double nrm = 0;
            for (int i = 0; i < m; i++)
                nrm += Q[i * q + j] * Q[i * q + j];
            for (int i = 0; i < m; i++)
                Q[i * q + j] /= sqrt(nrm);
        }
}

/* Columns [0, k) of the row-major m×q matrix X into Y (m×k). */
static void first_cols(const double *X, int m, int q, int k, double *Y) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            Y[i * k + j] = X[i * q + j];
}

/* max |XᵀX − I| for the row-major r×c X (columns orthonormal?) */
static double cols_orth_err(const double *X, int r, int c) {
    double e = 0;
    for (int a = 0; a < c; a++)
        for (int b = 0; b < c; b++) {
            double dot = 0;
            for (int i = 0; i < r; i++)
                dot += X[i * c + a] * X[i * c + b];
            e = fmax(e, fabs(dot - (a == b)));
        }
    return e;
}

static double max_angle(const double *U1, int m, int k1, const double *U2, int k2) {
    double ang[64];
    CU_ASSERT_EQUAL_FATAL(molt_principal_angles(U1, m, k1, U2, k2, ang), MOLT_OK);
    return ang[(k1 < k2 ? k1 : k2) - 1];
}

/* A = U0 diag(S0) V0ᵀ (m×n, float) with S0[j] = 10·0.8^j; the SVD must give
 * back S0 (to the float rounding of A), reconstruct A, be orthonormal, keep
 * the sign convention and span U0's and V0's leading subspaces. */
static void check_known_svd(int m, int n) {
    const int q = m < n ? m : n, k = 5;
    double *U0 = malloc(sizeof(double) * m * q), *V0 = malloc(sizeof(double) * n * q);
    double *S0 = malloc(sizeof(double) * q), *S = malloc(sizeof(double) * q);
    double *U = malloc(sizeof(double) * m * q), *VT = malloc(sizeof(double) * q * n);
    float *A = malloc(sizeof(float) * m * n);
    random_orthonormal(m, q, 11, U0);
    random_orthonormal(n, q, 12, V0);
    for (int j = 0; j < q; j++)
        S0[j] = 10 * pow(0.8, j);
    for (int i = 0; i < m; i++)
        for (int c = 0; c < n; c++) {
            double s = 0;
            for (int j = 0; j < q; j++)
                s += U0[i * q + j] * S0[j] * V0[c * q + j];
            A[i * n + c] = (float)s;
        }
    CU_ASSERT_EQUAL_FATAL(molt_svd_local(A, m, n, q, S, U, VT), MOLT_OK);
    double es = 0, erec = 0;
    for (int j = 0; j < q; j++)
        es = fmax(es, fabs(S[j] - S0[j]));
    for (int i = 0; i < m; i++)
        for (int c = 0; c < n; c++) {
            double s = 0;
            for (int j = 0; j < q; j++)
                s += U[i * q + j] * S[j] * VT[j * n + c];
            erec = fmax(erec, fabs(s - A[i * n + c]));
        }
    CU_ASSERT(es < 1e-5 * S0[0]);
    CU_ASSERT(erec < 1e-12 * S0[0]);
    for (int j = 1; j < q; j++)
        CU_ASSERT(S[j] <= S[j - 1]);
    /* V as an n×q matrix (columns = rows of VT) */
    double *V = malloc(sizeof(double) * n * q);
    for (int c = 0; c < n; c++)
        for (int j = 0; j < q; j++)
            V[c * q + j] = VT[j * n + c];
    CU_ASSERT(cols_orth_err(U, m, q) < 1e-12);
    CU_ASSERT(cols_orth_err(V, n, q) < 1e-12);
    for (int j = 0; j < q; j++) { /* sign convention */
        int at = 0;
        for (int i = 1; i < m; i++)
            if (fabs(U[i * q + j]) > fabs(U[at * q + j])) at = i;
        CU_ASSERT(U[at * q + j] > 0);
    }
    double *a = malloc(sizeof(double) * (m > n ? m : n) * k);
    double *b = malloc(sizeof(double) * (m > n ? m : n) * k);
    first_cols(U, m, q, k, a), first_cols(U0, m, q, k, b);
    double au = max_angle(a, m, k, b, k);
    first_cols(V, n, q, k, a), first_cols(V0, n, q, k, b);
    double av = max_angle(a, n, k, b, k);
    CU_ASSERT(au < 1e-5 && av < 1e-5);
    /* a truncated call returns the leading triplets of the full one */
    double Sk[5], *Uk = malloc(sizeof(double) * m * k), *VTk = malloc(sizeof(double) * k * n);
    CU_ASSERT_EQUAL_FATAL(molt_svd_local(A, m, n, k, Sk, Uk, VTk), MOLT_OK);
    first_cols(U, m, q, k, a);
    CU_ASSERT(memcmp(Sk, S, sizeof Sk) == 0);
    CU_ASSERT(memcmp(Uk, a, sizeof(double) * m * k) == 0);
    CU_ASSERT(memcmp(VTk, VT, sizeof(double) * k * n) == 0);
    printf("\n  %dx%d: |S - S0| %.1e, |A - USV'| %.1e, angles U %.1e V %.1e ", m, n, es, erec, au,
           av);
    free(U0), free(V0), free(S0), free(S), free(U), free(VT), free(A), free(V), free(a), free(b),
        free(Uk), free(VTk);
}

static void test_svd_local_known(void) {
    check_known_svd(40, 25);
    check_known_svd(25, 40);
    check_known_svd(7, 7);
}

/* The ScaLAPACK path on a 1x1 grid (MPI_COMM_SELF), 70x45 with 32-blocks:
 * same triplets as LAPACK. */
static void test_svd_dist_self(void) {
    const int m = 70, n = 45, k = 12;
    double *x = malloc(sizeof(double) * m * n);
    float *A = malloc(sizeof(float) * m * n);
    fill_normal(x, (size_t)m * n, 21);
    for (int i = 0; i < m * n; i++)
        A[i] = (float)x[i];
    double S1[12], S2[12], *U1 = malloc(sizeof(double) * m * k),
                           *U2 = malloc(sizeof(double) * m * k);
    double *V1 = malloc(sizeof(double) * k * n), *V2 = malloc(sizeof(double) * k * n);
    CU_ASSERT_EQUAL_FATAL(molt_svd_local(A, m, n, k, S1, U1, V1), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_svd_dist(MPI_COMM_SELF, A, m, n, k, S2, U2, V2), MOLT_OK);
    double es = 0, eu = 0, ev = 0;
    for (int j = 0; j < k; j++)
        es = fmax(es, fabs(S1[j] - S2[j]) / S1[j]);
    for (int i = 0; i < m * k; i++)
        eu = fmax(eu, fabs(U1[i] - U2[i]));
    for (int i = 0; i < k * n; i++)
        ev = fmax(ev, fabs(V1[i] - V2[i]));
    CU_ASSERT(es < 1e-12 && eu < 1e-9 && ev < 1e-9);
    printf("\n  pdgesvd 1x1 vs dgesvd: S %.1e, U %.1e, VT %.1e ", es, eu, ev);
    int pr, pc, nb;
    molt_svd_grid(4, m, n, &pr, &pc, &nb);
    CU_ASSERT(pr == 2 && pc == 2 && nb == 22);
    molt_svd_grid(3, 500, 400, &pr, &pc, &nb);
    CU_ASSERT(pr == 1 && pc == 3 && nb == 32);
    molt_svd_grid(2, 3, 9, &pr, &pc, &nb);
    CU_ASSERT(pr == 1 && pc == 2 && nb == 1);
    free(x), free(A), free(U1), free(U2), free(V1), free(V2);
}

static void test_svd_refuses(void) {
    float A[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    double S[4], U[16], VT[16];
    CU_ASSERT_EQUAL(molt_svd_local(A, 4, 3, 0, S, U, VT), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_svd_local(A, 4, 3, 4, S, U, VT), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_svd_local(A, 0, 3, 1, S, U, VT), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_svd_local(NULL, 4, 3, 1, S, U, VT), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_svd_local(A, 4, 3, 1, S, NULL, VT), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_svd_dist(MPI_COMM_SELF, A, 4, 3, 4, S, U, VT), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_svd_dist(MPI_COMM_SELF, A, 3, -1, 1, S, U, VT), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_svd_dist(MPI_COMM_SELF, A, 4, 3, 2, S, U, NULL), MOLT_ERR_INPUT);
    /* a rank-one matrix: one nonzero singular value, the rest zero */
    float R[12];
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            R[i * 3 + c] = (float)((i + 1) * (c + 1));
    CU_ASSERT_EQUAL_FATAL(molt_svd_local(R, 4, 3, 3, S, U, VT), MOLT_OK);
    CU_ASSERT(fabs(S[0] - sqrt(30.0 * 14.0)) < 1e-12 && S[1] < 1e-12 && S[2] < 1e-12);
}

/* span{e1} vs span{cos t e1 + sin t e2} in R^5 is t, at both ends. */
static void test_angles_known(void) {
    const double ts[] = {0, 1e-12, 1e-9, 1e-4, 0.3, PI / 4, 1.2, PI / 2 - 1e-9, PI / 2};
    double worst = 0;
    for (size_t c = 0; c < sizeof ts / sizeof *ts; c++) {
        double u1[5] = {1, 0, 0, 0, 0}, u2[5] = {cos(ts[c]), sin(ts[c]), 0, 0, 0}, ang;
        CU_ASSERT_EQUAL_FATAL(molt_principal_angles(u1, 5, 1, u2, 1, &ang), MOLT_OK);
        worst = fmax(worst, fabs(ang - ts[c]) / fmax(ts[c], 1e-300));
        CU_ASSERT(fabs(ang - ts[c]) <= 1e-15 + 4e-16 * ts[c]);
    }
    printf("\n  one angle t: worst relative error %.1e ", worst);
    /* two angles, rotated by a random orthogonal Q and with scaled,
     * non-orthonormal columns: U1 = Q[e1, e1 + 2e2], U2 = Q[c_a e1 + s_a e3,
     * c_b e2 + s_b e4] -> {0.2, 0.7} */
    const int m = 6;
    double Q[36], B1[12] = {0}, B2[12] = {0}, U1[12], U2[12], ang[2];
    random_orthonormal(m, m, 31, Q);
    B1[0 * 2 + 0] = 1, B1[0 * 2 + 1] = 1, B1[1 * 2 + 1] = 2;
    B2[0 * 2 + 0] = 3 * cos(0.2), B2[2 * 2 + 0] = 3 * sin(0.2);
    B2[1 * 2 + 1] = cos(0.7), B2[3 * 2 + 1] = sin(0.7);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < 2; j++) {
            U1[i * 2 + j] = U2[i * 2 + j] = 0;
            for (int p = 0; p < m; p++) {
                U1[i * 2 + j] += Q[i * m + p] * B1[p * 2 + j];
                U2[i * 2 + j] += Q[i * m + p] * B2[p * 2 + j];
            }
        }
    CU_ASSERT_EQUAL_FATAL(molt_principal_angles(U1, m, 2, U2, 2, ang), MOLT_OK);
    CU_ASSERT(fabs(ang[0] - 0.2) < 1e-14 && fabs(ang[1] - 0.7) < 1e-14);
    /* unequal dimensions, either order: span{e1, e2, e3} vs span{c e1 + s e4} */
    double W3[18] = {0}, w1[6] = {cos(0.4), 0, 0, sin(0.4), 0, 0}, a1, a2;
    W3[0 * 3 + 0] = W3[1 * 3 + 1] = W3[2 * 3 + 2] = 1;
    CU_ASSERT_EQUAL(molt_principal_angles(W3, m, 3, w1, 1, &a1), MOLT_OK);
    CU_ASSERT_EQUAL(molt_principal_angles(w1, m, 1, W3, 3, &a2), MOLT_OK);
    CU_ASSERT(fabs(a1 - 0.4) < 1e-15 && fabs(a2 - 0.4) < 1e-15);
    /* orthogonal: span{e1, e2} vs span{e3, e4} */
    double E12[12] = {0}, E34[12] = {0};
    E12[0] = E12[3] = E34[2 * 2 + 0] = E34[3 * 2 + 1] = 1;
    CU_ASSERT_EQUAL(molt_principal_angles(E12, m, 2, E34, 2, ang), MOLT_OK);
    CU_ASSERT(fabs(ang[0] - PI / 2) < 1e-15 && fabs(ang[1] - PI / 2) < 1e-15);
}

/* A subspace against itself and against another basis of itself: 0. */
static void test_angles_same_span(void) {
    const int m = 30, k = 4;
    double U[120], R[16], UR[120], ang[4];
    fill_normal(U, 120, 41);
    fill_normal(R, 16, 42);
    for (int j = 0; j < k; j++)
        R[j * k + j] += 3; /* well conditioned */
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++) {
            UR[i * k + j] = 0;
            for (int p = 0; p < k; p++)
                UR[i * k + j] += U[i * k + p] * R[p * k + j];
        }
    CU_ASSERT_EQUAL_FATAL(molt_principal_angles(U, m, k, U, k, ang), MOLT_OK);
    CU_ASSERT(ang[k - 1] < 1e-14);
    CU_ASSERT_EQUAL_FATAL(molt_principal_angles(U, m, k, UR, k, ang), MOLT_OK);
    CU_ASSERT(ang[k - 1] < 1e-14);
    for (int j = 1; j < k; j++)
        CU_ASSERT(ang[j] >= ang[j - 1]);
    printf("\n  same span, other basis: largest angle %.1e ", ang[k - 1]);
}

static void test_angles_refuses(void) {
    double U[12] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6}, V[12] = {0}, I2[12] = {1, 0, 0, 1};
    double ang[2];
    CU_ASSERT_EQUAL(molt_principal_angles(U, 6, 2, I2, 2, ang), MOLT_ERR_INPUT);  /* equal cols */
    CU_ASSERT_EQUAL(molt_principal_angles(I2, 6, 2, V, 2, ang), MOLT_ERR_INPUT);  /* zero */
    CU_ASSERT_EQUAL(molt_principal_angles(I2, 2, 3, I2, 1, ang), MOLT_ERR_INPUT); /* k > m */
    CU_ASSERT_EQUAL(molt_principal_angles(I2, 6, 0, I2, 1, ang), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_principal_angles(I2, 6, 2, I2, 2, NULL), MOLT_ERR_INPUT);
}

static float *random_points(int n, int d, uint64_t seed) {
    float *X = malloc(sizeof(float) * n * d);
    molt_rng r;
    molt_rng_init(&r, seed, MOLT_RNG_TEST, 1, 0, 0);
    for (int i = 0; i < n * d; i++)
        X[i] = molt_rng_normal(&r);
    return X;
}

static int all_sizes(const int *assign, int n, int k, int size) {
    int cnt[64] = {0}, ok = 1;
    for (int i = 0; i < n; i++) {
        if (assign[i] < 0 || assign[i] >= k) return 0;
        cnt[assign[i]]++;
    }
    for (int c = 0; c < k; c++)
        ok &= cnt[c] == size;
    return ok;
}

/* Exactly n/k per cluster on random data, the same for the same seed, and
 * no exchange of two rows between clusters lowers the cost (the rule's fixed
 * point, reached since the rounds converge well within 100). */
static void test_kmeans_random(void) {
    const int n = 120, d = 5, k = 6;
    float *X = random_points(n, d, 51);
    int a1[120], a2[120];
    CU_ASSERT_EQUAL_FATAL(molt_kmeans_balanced(X, n, d, k, 7, 100, a1), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_kmeans_balanced(X, n, d, k, 7, 100, a2), MOLT_OK);
    CU_ASSERT(all_sizes(a1, n, k, n / k));
    CU_ASSERT(memcmp(a1, a2, sizeof a1) == 0);
    double C[30] = {0}, D[720];
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++)
            C[a1[i] * d + t] += X[i * d + t] / (n / k);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < k; c++) {
            D[i * k + c] = 0;
            for (int t = 0; t < d; t++)
                D[i * k + c] += (X[i * d + t] - C[c * d + t]) * (X[i * d + t] - C[c * d + t]);
        }
    int better = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            const int a = a1[i], b = a1[j];
            better += a != b && D[i * k + b] + D[j * k + a] < D[i * k + a] + D[j * k + b] - 1e-9;
        }
    CU_ASSERT_EQUAL(better, 0);
    CU_ASSERT_EQUAL_FATAL(molt_kmeans_balanced(X, n, d, k, 8, 100, a2), MOLT_OK);
    CU_ASSERT(all_sizes(a2, n, k, n / k));
    /* k = 1 and k = n */
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, n, d, 1, 7, 5, a2), MOLT_OK);
    CU_ASSERT(all_sizes(a2, n, 1, n));
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, 60, d, 60, 7, 5, a2), MOLT_OK);
    CU_ASSERT(all_sizes(a2, 60, 60, 1));
    free(X);
}

/* Four well-separated equal blobs (interleaved rows) come back whole; three
 * blobs of 10, 20 and 30 rows still give three clusters of 20. */
static void test_kmeans_blobs(void) {
    const int n = 100, d = 3, k = 4;
    float *X = random_points(n, d, 61);
    for (int i = 0; i < n; i++)
        if (i % 4) X[i * d + i % 4 - 1] += 20; /* blob i % 4 at 0, 20e1, 20e2, 20e3 */
    int assign[100], blob_of[4] = {-1, -1, -1, -1}, ok = 1;
    CU_ASSERT_EQUAL_FATAL(molt_kmeans_balanced(X, n, d, k, 3, 20, assign), MOLT_OK);
    for (int i = 0; i < n; i++) {
        if (blob_of[i % 4] < 0) blob_of[i % 4] = assign[i];
        ok &= assign[i] == blob_of[i % 4];
    }
    CU_ASSERT(ok);
    CU_ASSERT(all_sizes(assign, n, k, n / k));
    free(X);
    X = random_points(60, d, 62);
    for (int i = 0; i < 60; i++)
        X[i * d] += i < 10 ? 0 : i < 30 ? 20 : 40;
    CU_ASSERT_EQUAL_FATAL(molt_kmeans_balanced(X, 60, d, 3, 3, 20, assign), MOLT_OK);
    CU_ASSERT(all_sizes(assign, 60, 3, 20));
    free(X);
}

/* Runs f with stderr captured into msg. */
static int captured(int (*f)(void), char *msg, size_t n) {
    fflush(stderr);
    FILE *tmp = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    int rc = f();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t got = fread(msg, 1, n - 1, tmp);
    msg[got] = '\0';
    fclose(tmp);
    return rc;
}

static int kmeans_10_into_3(void) {
    float X[10] = {0};
    int assign[10];
    return molt_kmeans_balanced(X, 10, 1, 3, 1, 5, assign);
}

static void test_kmeans_refuses(void) {
    char msg[512];
    CU_ASSERT_EQUAL(captured(kmeans_10_into_3, msg, sizeof msg), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "k must divide n"));
    float X[8] = {0};
    int assign[8];
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, 8, 1, 0, 1, 5, assign), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, 8, 1, 16, 1, 5, assign), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, 8, 0, 2, 1, 5, assign), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, 8, 1, 2, 1, 0, assign), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_kmeans_balanced(NULL, 8, 1, 2, 1, 5, assign), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, 8, 1, 2, 1, 5, NULL), MOLT_ERR_INPUT);
    /* identical points: still a balanced split */
    CU_ASSERT_EQUAL(molt_kmeans_balanced(X, 8, 1, 4, 1, 5, assign), MOLT_OK);
    CU_ASSERT(all_sizes(assign, 8, 4, 2));
}

int main(int argc, char **argv) {
    molt_test_case cases[] = {{"svd_local recovers a known U S V'", test_svd_local_known},
                              {"svd_dist on a 1x1 grid equals svd_local", test_svd_dist_self},
                              {"svd refuses bad sizes and NULL", test_svd_refuses},
                              {"principal angles of known subspaces", test_angles_known},
                              {"principal angles of one span are zero", test_angles_same_span},
                              {"principal angles refuse dependent columns", test_angles_refuses},
                              {"balanced k-means on random data", test_kmeans_random},
                              {"balanced k-means recovers blobs", test_kmeans_blobs},
                              {"balanced k-means refuses bad input", test_kmeans_refuses},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "linalg", cases);
}
