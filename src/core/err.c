/* err.c — see include/molt/err.h. */
#include "molt/err.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The label names the world rank: the one identity every user-facing message
 * shares. Read from MPI each time, so this module keeps no state. */
static void label(char *buf, size_t n) {
    int init = 0, fin = 0, rank = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        snprintf(buf, n, "molt[rank %d]", rank);
    } else {
        snprintf(buf, n, "molt");
    }
}

static const char *short_path(const char *file) {
    const char *s = strstr(file, "/src/");
    if (!s) s = strstr(file, "/tests/");
    return s ? s + 1 : file;
}

int molt_error_at(int code, const char *file, int line, const char *fmt, ...) {
    char lab[48], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    label(lab, sizeof lab);
    fprintf(stderr, "%s: error: %s (%s:%d)\n", lab, msg, short_path(file), line);
    fflush(stderr);
    return code;
}

int molt_mpi_error_at(int mpi_rc, const char *file, int line, const char *call) {
    char s[MPI_MAX_ERROR_STRING] = "unknown MPI error";
    int len = 0;
    MPI_Error_string(mpi_rc, s, &len);
    return molt_error_at(MOLT_ERR_INTERNAL, file, line, "%s failed: %s", call, s);
}

void molt_trace_at(const char *file, int line, const char *call) {
    char lab[48];
    label(lab, sizeof lab);
    fprintf(stderr, "%s:   from %s (%s:%d)\n", lab, call, short_path(file), line);
}

void *molt_calloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = (n && size) ? calloc(n, size) : calloc(1, 1);
    if (!p)
        molt_error_at(MOLT_ERR_INTERNAL, file, line, "out of memory allocating %zu x %zu bytes",
                      n, size);
    return p;
}
