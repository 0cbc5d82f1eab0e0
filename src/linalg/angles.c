/* angles.c — principal angles between column spaces; see
 * include/molt/linalg.h. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "linalg/scalapack.h"
#include "molt/err.h"
#include "molt/linalg.h"

/* Q (column-major m×k, ld m): an orthonormal basis of the columns of the
 * row-major m×k matrix U, by Householder QR. Columns whose R diagonal falls
 * to m·eps of the largest are linearly dependent: refused. */
static int orthonormal_basis(const double *U, int m, int k, double *Q) {
    int rc = MOLT_OK, info = 0, lwork = -1;
    double *tau = NULL, *work = NULL, query = 0, query2 = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            Q[(size_t)j * m + i] = U[(size_t)i * k + j];
    MOLT_ALLOC(tau, k);
    dgeqrf_(&m, &k, Q, &m, tau, &query, &lwork, &info);
    if (info == 0) dorgqr_(&m, &k, &k, Q, &m, tau, &query2, &lwork, &info);
    if (info != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "QR workspace query failed (info %d)", info);
    if ((lwork = lapack_lwork(query > query2 ? query : query2)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "QR of a %d x %d matrix: workspace too large", m, k);
    MOLT_ALLOC(work, lwork);
    dgeqrf_(&m, &k, Q, &m, tau, work, &lwork, &info);
    if (info != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "dgeqrf failed (info %d)", info);
    double rmax = 0;
    for (int j = 0; j < k; j++)
        rmax = fmax(rmax, fabs(Q[(size_t)j * m + j]));
    for (int j = 0; j < k; j++)
        if (!(fabs(Q[(size_t)j * m + j]) > m * DBL_EPSILON * rmax))
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "principal angles: the %d columns of a %d x %d matrix are linearly "
                      "dependent (column %d)",
                      k, m, k, j);
    dorgqr_(&m, &k, &k, Q, &m, tau, work, &lwork, &info);
    if (info != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "dorgqr failed (info %d)", info);
done:
    free(tau), free(work);
    return rc;
}

/* Singular values (descending) of the column-major r×c matrix a (ld r),
 * which is destroyed. */
static int singular_values(int r, int c, double *a, double *s) {
    int rc = MOLT_OK, info = 0, lwork = -1, one = 1;
    double *work = NULL, query = 0, dummy = 0;
    dgesvd_("N", "N", &r, &c, a, &r, s, &dummy, &one, &dummy, &one, &query, &lwork, &info, 1, 1);
    if (info == 0 && (lwork = lapack_lwork(query)) > 0) {
        MOLT_ALLOC(work, lwork);
        dgesvd_("N", "N", &r, &c, a, &r, s, &dummy, &one, &dummy, &one, work, &lwork, &info, 1, 1);
    }
    if (info != 0 || lwork < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "dgesvd of a %d x %d matrix failed (info %d)", r, c, info);
done:
    free(work);
    return rc;
}

int molt_principal_angles(const double *U1, int m, int k1, const double *U2, int k2,
                          double *angles) {
    int rc = MOLT_OK;
    double *qa = NULL, *qb = NULL, *c = NULL, *w = NULL, *cs = NULL, *sn = NULL;
    if (m < 1 || k1 < 1 || k2 < 1 || k1 > m || k2 > m)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "principal angles between %d- and %d-dimensional subspaces of R^%d "
                  "(need 1 <= k1, k2 <= m)",
                  k1, k2, m);
    if (!U1 || !U2 || !angles) MOLT_FAIL(MOLT_ERR_INPUT, "principal angles: NULL argument");
    /* a is the larger subspace (ka >= kb = the number of angles) */
    const double *Ua = k1 >= k2 ? U1 : U2, *Ub = k1 >= k2 ? U2 : U1;
    const int ka = k1 >= k2 ? k1 : k2, kb = k1 >= k2 ? k2 : k1;
    MOLT_ALLOC(qa, (size_t)m * ka);
    MOLT_ALLOC(qb, (size_t)m * kb);
    MOLT_ALLOC(c, (size_t)ka * kb);
    MOLT_ALLOC(w, (size_t)m * kb);
    MOLT_ALLOC(cs, kb);
    MOLT_ALLOC(sn, kb);
    MOLT_TRY(orthonormal_basis(Ua, m, ka, qa));
    MOLT_TRY(orthonormal_basis(Ub, m, kb, qb));
    /* cosines: singular values of C = Qaᵀ Qb; sines: of W = (I - Qa Qaᵀ) Qb */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, ka, kb, m, 1.0, qa, m, qb, m, 0.0, c, ka);
    for (size_t i = 0; i < (size_t)m * kb; i++)
        w[i] = qb[i];
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, kb, ka, -1.0, qa, m, c, ka, 1.0, w,
                m);
    MOLT_TRY(singular_values(ka, kb, c, cs));
    MOLT_TRY(singular_values(m, kb, w, sn));
    /* angle i (ascending) has the i-th largest cosine and the i-th smallest
     * sine; each is accurate where the angle is not near its flat end */
    for (int i = 0; i < kb; i++) {
        const double co = fmin(cs[i], 1.0), si = fmin(sn[kb - 1 - i], 1.0);
        angles[i] = co * co > 0.5 ? asin(si) : acos(co);
    }
done:
    free(qa), free(qb), free(c), free(w), free(cs), free(sn);
    return rc;
}
