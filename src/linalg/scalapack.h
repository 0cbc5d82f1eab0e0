/* scalapack.h — the BLACS, ScaLAPACK and LAPACK entry points molt calls.
 *
 * Debian's libscalapack-openmpi ships no C header (DESIGN §11), so they are
 * declared here, once. The BLACS calls use its C interface (Cblacs_*, which
 * takes an MPI_Comm); ScaLAPACK and LAPACK (from OpenBLAS, which exports
 * dgesvd_, sgesvd_, dgeqrf_, dorgqr_) use the Fortran symbols: every argument
 * by pointer, column-major storage, default 32-bit INTEGER (LP64 builds), and
 * each CHARACTER argument's hidden length (size_t) appended after all other
 * arguments, as gfortran >= 8 expects. */
#ifndef MOLT_LINALG_SCALAPACK_H
#define MOLT_LINALG_SCALAPACK_H
#include <mpi.h>
#include <stddef.h>

/* BLACS (C interface). A system handle names an MPI communicator; gridinit
 * turns it into a grid context (-1 on ranks outside the grid). */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);

/* ScaLAPACK tools and driver. */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld, int *info);
void pdgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a,
              const int *ia, const int *ja, const int *desca, double *s, double *u, const int *iu,
              const int *ju, const int *descu, double *vt, const int *ivt, const int *jvt,
              const int *descvt, double *work, const int *lwork, int *info, size_t jobu_len,
              size_t jobvt_len);

/* LAPACK. */
void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a,
             const int *lda, double *s, double *u, const int *ldu, double *vt, const int *ldvt,
             double *work, const int *lwork, int *info, size_t jobu_len, size_t jobvt_len);
void sgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, float *a,
             const int *lda, float *s, float *u, const int *ldu, float *vt, const int *ldvt,
             float *work, const int *lwork, int *info, size_t jobu_len, size_t jobvt_len);
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
             const int *lwork, int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau,
             double *work, const int *lwork, int *info);

/* The work size a workspace query (lwork = -1) returned in work[0], rounded
 * up; -1 when it does not fit an INTEGER. */
static inline int lapack_lwork(double query) {
    return query >= 0 && query < 2147483647.0 ? (int)query + 1 : -1;
}

#endif
