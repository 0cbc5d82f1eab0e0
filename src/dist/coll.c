/* coll.c — MPI collectives over buffers of any length (include/molt/coll.h). */
#include "molt/coll.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"

size_t molt_coll_chunk(void) {
#ifdef MOLT_FAULT_INJECTION
    const char *e = getenv("MOLT_FAULT_MPI_CHUNK");
    long v = e ? atol(e) : 0;
    if (v > 0 && v < INT_MAX) return (size_t)v;
#endif
    return INT_MAX;
}

static size_t min_sz(size_t a, size_t b) {
    return a < b ? a : b;
}

/* buf: n elements of `type`, `size` bytes each, summed in place in chunks. */
static int allreduce_sum(void *buf, size_t n, MPI_Datatype type, size_t size, MPI_Comm comm) {
    int rc = MOLT_OK;
    const size_t chunk = molt_coll_chunk();
    for (size_t off = 0; off < n; off += chunk)
        MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * size,
                               (int)min_sz(chunk, n - off), type, MPI_SUM, comm));
done:
    return rc;
}

int molt_allreduce_sum_f32(float *buf, size_t n, MPI_Comm comm) {
    return allreduce_sum(buf, n, MPI_FLOAT, sizeof *buf, comm);
}

int molt_allreduce_sum_f64(double *buf, size_t n, MPI_Comm comm) {
    return allreduce_sum(buf, n, MPI_DOUBLE, sizeof *buf, comm);
}

int molt_reduce_sum_f64(double *buf, size_t n, int root, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    const size_t chunk = molt_coll_chunk();
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    for (size_t off = 0; off < n; off += chunk) {
        const int k = (int)min_sz(chunk, n - off);
        if (rank == root)
            MOLT_MPI(MPI_Reduce(MPI_IN_PLACE, buf + off, k, MPI_DOUBLE, MPI_SUM, root, comm));
        else
            MOLT_MPI(MPI_Reduce(buf + off, NULL, k, MPI_DOUBLE, MPI_SUM, root, comm));
    }
done:
    return rc;
}

int molt_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm) {
    int rc = MOLT_OK;
    const size_t chunk = molt_coll_chunk();
    for (size_t off = 0; off < n; off += chunk)
        MOLT_MPI(MPI_Bcast((char *)buf + off, (int)min_sz(chunk, n - off), MPI_BYTE, root, comm));
done:
    return rc;
}

/* Units of every rank, and whether their elements fit one call's counts. */
static int units_total(const int *units, int P, size_t unit, size_t *U) {
    *U = 0;
    for (int k = 0; k < P; k++) *U += (size_t)units[k];
    return *U * unit <= molt_coll_chunk();
}

int molt_allgather_units_f32(const float *mine, float *all, const int *units, size_t unit,
                             MPI_Comm comm) {
    int rc = MOLT_OK, P = 1, me = 0;
    int *cnt = NULL, *dsp = NULL;
    MPI_Datatype t = MPI_DATATYPE_NULL;
    size_t U = 0;
    MOLT_MPI(MPI_Comm_size(comm, &P));
    MOLT_MPI(MPI_Comm_rank(comm, &me));
    MOLT_ALLOC(cnt, P);
    MOLT_ALLOC(dsp, P);
    /* element counts while they fit; else whole units of a contiguous type */
    const size_t scale = units_total(units, P, unit, &U) ? unit : 1;
    if (scale == 1) {
        if (unit > (size_t)INT_MAX)
            MOLT_FAIL(MOLT_ERR_INPUT, "one expert tensor of %zu floats exceeds MPI's int counts",
                      unit);
        MOLT_MPI(MPI_Type_contiguous((int)unit, MPI_FLOAT, &t));
        MOLT_MPI(MPI_Type_commit(&t));
    }
    size_t at = 0;
    for (int k = 0; k < P; k++) {
        cnt[k] = (int)((size_t)units[k] * scale);
        dsp[k] = (int)at;
        at += (size_t)cnt[k];
    }
    MOLT_MPI(MPI_Allgatherv(mine, cnt[me], scale == 1 ? t : MPI_FLOAT, all, cnt, dsp,
                            scale == 1 ? t : MPI_FLOAT, comm));
done:
    if (t != MPI_DATATYPE_NULL) MPI_Type_free(&t);
    free(cnt), free(dsp);
    return rc;
}

/* Chunked path: slices of c elements out of every unit at a time; the
 * packed slices stay within 16 Mi floats (64 MiB of scratch, not 8 GiB). */
static size_t slice_width(size_t U, size_t unit) {
    const size_t cap = (size_t)1 << 24, lim = molt_coll_chunk();
    size_t c = (lim < cap ? lim : cap) / (U ? U : 1);
    return c < 1 ? 1 : c > unit ? unit : c;
}

size_t molt_reduce_scatter_scratch(const int *units, size_t unit, int P) {
    size_t U = 0;
    if (units_total(units, P, unit, &U)) return 0;
    return 2 * U * slice_width(U, unit); /* packed send + this rank's result */
}

int molt_reduce_scatter_units_f32(const float *all, float *mine, const int *units, size_t unit,
                                  float *tmp, MPI_Comm comm) {
    int rc = MOLT_OK, P = 1, me = 0;
    int *cnt = NULL;
    size_t U = 0;
    MOLT_MPI(MPI_Comm_size(comm, &P));
    MOLT_MPI(MPI_Comm_rank(comm, &me));
    MOLT_ALLOC(cnt, P);
    if (units_total(units, P, unit, &U)) {
        for (int k = 0; k < P; k++) cnt[k] = (int)((size_t)units[k] * unit);
        MOLT_MPI(MPI_Reduce_scatter(all, mine, cnt, MPI_FLOAT, MPI_SUM, comm));
        goto done;
    }
    /* [U][w] slices of every unit, packed in rank order: each rank's block of
     * units stays contiguous, so one reduce-scatter per slice */
    const size_t c = slice_width(U, unit);
    float *res = tmp + U * c;
    for (size_t j0 = 0; j0 < unit; j0 += c) {
        const size_t w = min_sz(c, unit - j0);
        for (size_t u = 0; u < U; u++) memcpy(tmp + u * w, all + u * unit + j0, sizeof(float) * w);
        for (int k = 0; k < P; k++) cnt[k] = (int)((size_t)units[k] * w);
        MOLT_MPI(MPI_Reduce_scatter(tmp, res, cnt, MPI_FLOAT, MPI_SUM, comm));
        for (int u = 0; u < units[me]; u++)
            memcpy(mine + (size_t)u * unit + j0, res + (size_t)u * w, sizeof(float) * w);
    }
done:
    free(cnt);
    return rc;
}
