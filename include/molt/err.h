/* err.h — error codes, reporting and propagation (PETSc style).
 *
 * Every function that can fail returns an int: MOLT_OK (0) or one of the exit
 * codes below, which the `molt` command returns unchanged. The first failure
 * is reported once, where it happens, as
 *     molt[rank R]: error: <message> (src/file.c:123)
 * and each caller that propagates it with MOLT_TRY adds a "  from" line, so a
 * failure on rank 37 says where it began and how it got out. */
#ifndef MOLT_ERR_H
#define MOLT_ERR_H
#include <stddef.h>

enum {
    MOLT_OK = 0,
    MOLT_ERR_INTERNAL = 1, /* internal or system failure (I/O, MPI, memory) */
    MOLT_ERR_INPUT = 2,    /* bad input: config, data, checkpoint, arguments */
    MOLT_EXIT_RESUME = 85  /* checkpointed on a signal: requeue and resume */
};

/* Report an error and return `code`. Printed to stderr with the MPI world rank
 * when MPI is initialised. */
int molt_error_at(int code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Report the failing MPI call with MPI's error string; returns MOLT_ERR_INTERNAL. */
int molt_mpi_error_at(int mpi_rc, const char *file, int line, const char *call);
/* Print "  from <call> (file:line)" for a propagated error. */
void molt_trace_at(const char *file, int line, const char *call);

#define MOLT_ERROR(code, ...) molt_error_at((code), __FILE__, __LINE__, __VA_ARGS__)

/* Propagate: needs `int rc` and a `done:` cleanup label in the function. */
#define MOLT_TRY(expr)                                                         \
    do {                                                                       \
        rc = (expr);                                                           \
        if (rc != MOLT_OK) {                                                   \
            molt_trace_at(__FILE__, __LINE__, #expr);                          \
            goto done;                                                         \
        }                                                                      \
    } while (0)
/* Fail with a message: sets rc and jumps to `done`. */
#define MOLT_FAIL(code, ...)                                                   \
    do {                                                                       \
        rc = molt_error_at((code), __FILE__, __LINE__, __VA_ARGS__);           \
        goto done;                                                             \
    } while (0)
/* Check an MPI call (return code must be MPI_SUCCESS). */
#define MOLT_MPI(expr)                                                         \
    do {                                                                       \
        int molt_mpi_rc_ = (expr);                                             \
        if (molt_mpi_rc_ != 0) {                                               \
            rc = molt_mpi_error_at(molt_mpi_rc_, __FILE__, __LINE__, #expr);   \
            goto done;                                                         \
        }                                                                      \
    } while (0)

/* Checked allocation: on failure reports size and call site and returns NULL. */
void *molt_calloc_at(size_t n, size_t size, const char *file, int line);
#define MOLT_ALLOC(ptr, n)                                                     \
    do {                                                                       \
        (ptr) = molt_calloc_at((size_t)(n), sizeof(*(ptr)), __FILE__, __LINE__); \
        if (!(ptr)) {                                                          \
            rc = MOLT_ERR_INTERNAL;                                            \
            goto done;                                                         \
        }                                                                      \
    } while (0)

#endif
