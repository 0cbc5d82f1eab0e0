/* a2a.c — chunked, overlapped all-to-all token exchange (include/molt/a2a.h). */
#include "molt/a2a.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "molt/coll.h"
#include "molt/err.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void molt_a2a_free(molt_a2a *a) {
    int fin = 0;
    MPI_Finalized(&fin);
    for (int i = 0; i < a->nrt && !fin; i++) MPI_Type_free(&a->rt[i]);
    free(a->nl_of), free(a->scnt), free(a->rcnt), free(a->s_off), free(a->r_off);
    free(a->eoff), free(a->perm), free(a->stage_r), free(a->stage_s), free(a->req);
    for (int i = 0; i < 4; i++)
        free(a->ic[i]), free(a->oc[i]);
    memset(a, 0, sizeof *a);
}

int molt_a2a_create(molt_a2a *a, MPI_Comm comm, int P, int me, int chunks, const int *nl_of,
                    int cap_s, int cap_r, int wmax) {
    int rc = MOLT_OK;
    memset(a, 0, sizeof *a);
    a->comm = comm, a->P = P, a->me = me, a->C = P > 1 ? chunks : 1;
    a->cap_s = cap_s, a->cap_r = cap_r, a->wmax = wmax;
    MOLT_ALLOC(a->nl_of, P);
    for (int k = 0; k < P; k++) {
        a->nl_of[k] = nl_of[k];
        if (nl_of[k] > a->nlmax) a->nlmax = nl_of[k];
    }
    a->nl = nl_of[me];
    const int C = a->C, nm = a->nlmax > 0 ? a->nlmax : 1;
    MOLT_ALLOC(a->scnt, (long)P * C * nm);
    MOLT_ALLOC(a->rcnt, (long)P * C * nm);
    MOLT_ALLOC(a->s_off, (long)C * P + 1);
    MOLT_ALLOC(a->r_off, (long)C * P + 1);
    MOLT_ALLOC(a->eoff, (long)C * (a->nl + 1));
    if (P > 1) {
        MOLT_ALLOC(a->perm, cap_r > 0 ? cap_r : 1);
        MOLT_ALLOC(a->stage_r, (long)(cap_r > 0 ? cap_r : 1) * wmax);
        MOLT_ALLOC(a->stage_s, (long)(cap_r > 0 ? cap_r : 1) * wmax);
        MOLT_ALLOC(a->req, 2 * C);
        for (int i = 0; i < 2 * C; i++)
            a->req[i] = MPI_REQUEST_NULL;
        for (int i = 0; i < 4; i++) {
            MOLT_ALLOC(a->ic[i], (long)C * P);
            MOLT_ALLOC(a->oc[i], (long)C * P);
        }
    }
done:
    if (rc) molt_a2a_free(a);
    return rc;
}

int molt_a2a_set_counts(molt_a2a *a, const int *scnt_send) {
    int rc = MOLT_OK;
    const int P = a->P, C = a->C, nm = a->nlmax > 0 ? a->nlmax : 1, nl = a->nl;
    /* [C][P][nm] -> per-peer blocks [P][C][nm] for MPI_Alltoall */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < P; k++)
            for (int l = 0; l < nm; l++)
                a->scnt[((long)k * C + c) * nm + l] =
                    l < a->nlmax ? scnt_send[((long)c * P + k) * a->nlmax + l] : 0;
    if (P > 1) {
        double t0 = now_s();
        MOLT_MPI(MPI_Alltoall(a->scnt, C * nm, MPI_INT, a->rcnt, C * nm, MPI_INT, a->comm));
        a->t_comm += now_s() - t0;
    } else {
        memcpy(a->rcnt, a->scnt, sizeof(int) * (size_t)C * nm);
    }
    int j = 0, r = 0;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < P; k++) {
            a->s_off[c * P + k] = j, a->r_off[c * P + k] = r;
            for (int l = 0; l < a->nl_of[k]; l++)
                j += a->scnt[((long)k * C + c) * nm + l];
            for (int l = 0; l < nl; l++)
                r += a->rcnt[((long)k * C + c) * nm + l];
        }
    a->s_off[C * P] = j, a->r_off[C * P] = r;
    if (j > a->cap_s || r > a->cap_r)
        MOLT_FAIL(MOLT_ERR_INTERNAL,
                  "MoE exchange: %d rows to send / %d to receive exceed the "
                  "buffers (%d / %d)",
                  j, r, a->cap_s, a->cap_r);
    a->recv_rows = r;
    /* expert-major layout of each chunk: local expert, then source, then token */
    for (int c = 0; c < C; c++) {
        int at = a->r_off[c * P];
        for (int l = 0; l <= nl; l++) {
            a->eoff[c * (nl + 1) + l] = at;
            if (l == nl) break;
            for (int k = 0; k < P; k++) {
                int n = a->rcnt[((long)k * C + c) * nm + l];
                if (P > 1) {
                    int src = a->r_off[c * P + k];
                    for (int l2 = 0; l2 < l; l2++)
                        src += a->rcnt[((long)k * C + c) * nm + l2];
                    for (int i = 0; i < n; i++)
                        a->perm[src + i] = at + i;
                }
                at += n;
            }
        }
    }
done:
    return rc;
}

void molt_a2a_progress(molt_a2a *a) {
    if (a->P <= 1) return;
    int flag = 0;
    MPI_Testall(2 * a->C, a->req, &flag, MPI_STATUSES_IGNORE);
}

static void permute(float *dst, const float *src, const int *perm, int lo, int hi, int w,
                    int forward) {
    for (int i = lo; i < hi; i++) {
        if (forward)
            memcpy(dst + (long)perm[i] * w, src + (long)i * w, sizeof(float) * w);
        else
            memcpy(dst + (long)i * w, src + (long)perm[i] * w, sizeof(float) * w);
    }
}

/* What one exchange's counts count: floats while every count fits MPI's int
 * (the usual case), else rows of w floats, whose counts are row counts and
 * so ints by construction. Row types are made once per width and kept. */
static int row_unit(molt_a2a *a, int w, MPI_Datatype *t, int *per_row) {
    int rc = MOLT_OK;
    const long rows = a->cap_r > a->cap_s ? a->cap_r : a->cap_s;
    *t = MPI_FLOAT, *per_row = w;
    if ((size_t)rows * (size_t)w <= molt_coll_chunk()) return MOLT_OK;
    *per_row = 1;
    for (int i = 0; i < a->nrt; i++)
        if (a->rtw[i] == w) {
            *t = a->rt[i];
            return MOLT_OK;
        }
    if (a->nrt == (int)(sizeof a->rt / sizeof a->rt[0]))
        MOLT_FAIL(MOLT_ERR_INTERNAL, "MoE exchange: more row widths than row types");
    MOLT_MPI(MPI_Type_contiguous(w, MPI_FLOAT, &a->rt[a->nrt]));
    MOLT_MPI(MPI_Type_commit(&a->rt[a->nrt]));
    a->rtw[a->nrt] = w;
    *t = a->rt[a->nrt++];
done:
    return rc;
}

int molt_a2a_run(molt_a2a *a, const float *send, int win, float *X, float *Y, int wout, float *ret,
                 const int *plan_eoff, molt_a2a_compute fn, void *ctx) {
    int rc = MOLT_OK;
    const int P = a->P, C = a->C;
    if (P == 1) return fn(ctx, 0, send, ret, plan_eoff);
    MPI_Datatype tin, tout;
    int kin, kout; /* count units per row */
    MOLT_TRY(row_unit(a, win, &tin, &kin));
    MOLT_TRY(row_unit(a, wout, &tout, &kout));
    /* element counts and displacements, relative to each chunk's base */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < P; k++) {
            int i = c * P + k;
            int sr = a->s_off[i + 1] - a->s_off[i], rr = a->r_off[i + 1] - a->r_off[i];
            int sd = a->s_off[i] - a->s_off[c * P], rd = a->r_off[i] - a->r_off[c * P];
            a->ic[0][i] = sr * kin, a->ic[1][i] = sd * kin;
            a->ic[2][i] = rr * kin, a->ic[3][i] = rd * kin;
            a->oc[0][i] = rr * kout, a->oc[1][i] = rd * kout;
            a->oc[2][i] = sr * kout, a->oc[3][i] = sd * kout;
        }
    double t0 = now_s();
#define POST_DISPATCH(c)                                                                           \
    MOLT_MPI(MPI_Ialltoallv(send + (long)a->s_off[(c)*P] * win, a->ic[0] + (c)*P,                  \
                            a->ic[1] + (c)*P, tin, a->stage_r + (long)a->r_off[(c)*P] * win,       \
                            a->ic[2] + (c)*P, a->ic[3] + (c)*P, tin, a->comm, &a->req[c]))
    POST_DISPATCH(0);
    a->t_comm += now_s() - t0;
    for (int c = 0; c < C; c++) {
        t0 = now_s();
        MOLT_MPI(MPI_Wait(&a->req[c], MPI_STATUS_IGNORE));
        if (c + 1 < C) POST_DISPATCH(c + 1);
        a->t_comm += now_s() - t0;
        int lo = a->r_off[c * P], hi = a->r_off[(c + 1) * P];
        permute(X, a->stage_r, a->perm, lo, hi, win, 1);
        MOLT_TRY(fn(ctx, c, X, Y, a->eoff + c * (a->nl + 1)));
        permute(a->stage_s, Y, a->perm, lo, hi, wout, 0);
        t0 = now_s();
        MOLT_MPI(MPI_Ialltoallv(a->stage_s + (long)lo * wout, a->oc[0] + c * P, a->oc[1] + c * P,
                                tout, ret + (long)a->s_off[c * P] * wout, a->oc[2] + c * P,
                                a->oc[3] + c * P, tout, a->comm, &a->req[C + c]));
        a->t_comm += now_s() - t0;
    }
#undef POST_DISPATCH
    t0 = now_s();
    MOLT_MPI(MPI_Waitall(C, a->req + C, MPI_STATUSES_IGNORE));
    a->t_comm += now_s() - t0;
done:
    return rc;
}

int molt_a2a_probe(MPI_Comm ep_comm, MPI_Comm world, double *alpha, double *beta) {
    int rc = MOLT_OK, P = 1;
    const int big = 16384; /* floats per peer: 64 KiB */
    float *sb = NULL, *rb = NULL;
    double v[2] = {0, 0};
    MOLT_MPI(MPI_Comm_size(ep_comm, &P));
    if (P > 1) {
        MOLT_ALLOC(sb, (long)P * big);
        MOLT_ALLOC(rb, (long)P * big);
        double t[2] = {0, 0};
        const int reps[2] = {20, 6}, cnt[2] = {1, big};
        for (int k = 0; k < 2; k++) {
            for (int i = -2; i < reps[k]; i++) { /* two warm-up rounds */
                MOLT_MPI(MPI_Barrier(ep_comm));
                double t0 = now_s();
                MOLT_MPI(MPI_Alltoall(sb, cnt[k], MPI_FLOAT, rb, cnt[k], MPI_FLOAT, ep_comm));
                if (i >= 0) t[k] += now_s() - t0;
            }
            t[k] /= reps[k];
        }
        v[0] = t[0] / (P - 1);
        v[1] = (t[1] - t[0]) / ((double)(P - 1) * big * sizeof(float));
        if (v[1] < 1e-12) v[1] = 1e-12;
    }
    MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, world));
    *alpha = v[0], *beta = v[1];
done:
    free(sb), free(rb);
    return rc;
}
