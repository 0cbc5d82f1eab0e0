/* router_dump — writes what tests/ref/router_oracle.py checks against PyTorch:
 * for every case (router kind x parameters x input set) the logits, the
 * router's outputs, statistics, auxiliary losses and every gradient, all
 * through include/molt/router.h.
 *   router_dump OUT.h5
 * Layout (one group per case, /case_NNN):
 *   attrs  name, router (kind name), kind, N, T, top_k, keep_top_k, top_p,
 *          entropy_threshold, entropy_q, capacity_factor (the fp32 values as
 *          doubles), capacity (molt_router_capacity), split (the statistics
 *          and aux gradients run as two micro-batches [0,split), [split,T)),
 *          nsel (forward's return), balance_coef, dynmole_entropy_coef,
 *          dynmole_balance_coef, zloss_coef, aux_balance, aux_dynmole,
 *          aux_zloss (molt_aux_loss over the global stats), stat_ent_sum,
 *          stat_zsum, stat_tokens, stat_selections
 *   z, p, w, sel (0/1), dw, dz_w, dp_aux, dz_aux, dz_aux_balance,
 *   dz_aux_dynmole, dz_aux_zloss, dz        float32 [T,N]
 *   ent, soft (0/1)                         float32 [T]
 *   stat_count, stat_psum, stat_wsum        float32 [N]
 * dz_w = d(sum dw*w)/dz; dp_aux = d(aux)/dp (balance + dynmole, all on);
 * dz_aux = d(aux)/dz (all three on), dz_aux_<loss> = the same with only that
 * loss on; dz = d(sum dw*w + aux)/dz. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/rng.h"
#include "molt/router.h"

/* A scalar double attribute (h5io has long and string ones). */
static int attr_f64(hid_t obj, const char *fname, const char *name, double v) {
    int rc = MOLT_OK;
    hid_t space = -1, attr = -1;
    if ((space = H5Screate(H5S_SCALAR)) < 0 ||
        (attr = H5Acreate2(obj, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, H5T_NATIVE_DOUBLE, &v) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write attribute %s", fname, name);
done:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return rc;
}

typedef struct {
    const char *name;
    int T, N;
    void (*fill)(float *z, int T, int N, molt_rng *g);
} input_set;

/* Alternating flat (high-entropy) and peaked (low-entropy) tokens, so the
 * dynmole fallback happens on some tokens and not on others. */
static void fill_mixed(float *z, int T, int N, molt_rng *g) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            z[t * N + i] = (t % 2 ? 3.0f : 0.15f) * (float)molt_rng_normal(g);
}
static void fill_normal(float *z, int T, int N, molt_rng *g) {
    for (int i = 0; i < T * N; i++)
        z[i] = (float)molt_rng_normal(g);
}
/* Equal logits within a token and equal p across tokens (rows 0 and 5). */
static void fill_ties(float *z, int T, int N, molt_rng *g) {
    static const float rows[6][4] = {{1, 1, 1, 1},   {0, 2, 2, 1},    {5, 0, 5, 5},
                                     {3, 3, -1, -1}, {0, 0, 0, 1.5f}, {1, 1, 1, 1}};
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            z[t * N + i] = rows[t % 6][i];
}
/* z = log of exactly representable p: cumulative sums land exactly on 0.75
 * (and on 0.5, 0.25). */
static void fill_exact(float *z, int T, int N, molt_rng *g) {
    static const double rows[3][4] = {
        {0.5, 0.25, 0.125, 0.125}, {0.125, 0.125, 0.25, 0.5}, {0.25, 0.25, 0.25, 0.25}};
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            z[t * N + i] = (float)log(rows[t % 3][i]);
}
/* Peaked tokens; expert 3 is far below every other: nobody's top choice. */
static void fill_unused(float *z, int T, int N, molt_rng *g) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            z[t * N + i] = i == 3 ? -8.0f : 2.5f * (float)molt_rng_normal(g);
}

static const input_set INPUTS[] = {
    {"mixed", 24, 8, fill_mixed},   {"ties", 6, 4, fill_ties},     {"exact", 3, 4, fill_exact},
    {"unused", 10, 5, fill_unused}, {"single", 6, 1, fill_normal}, {"wide", 40, 12, fill_normal},
};

typedef struct {
    const char *name;
    molt_router_cfg c; /* N is the input's */
} router_set;

/* kind, N, top_k, keep_top_k, top_p, entropy_threshold, entropy_q, capacity_factor */
static const router_set ROUTERS[] = {
    {"topk2", {MOLT_ROUTER_TOPK, 0, 2, 0, 0, 0, 1.1f, 0}},
    {"topk_all", {MOLT_ROUTER_TOPK, 0, 16, 0, 0, 0, 1.1f, 0}},
    {"topp0.8", {MOLT_ROUTER_TOPP, 0, 0, 0, 0.8f, 0, 1.1f, 0}},
    {"topp0.75", {MOLT_ROUTER_TOPP, 0, 0, 0, 0.75f, 0, 1.0f, 0}},
    {"topp1", {MOLT_ROUTER_TOPP, 0, 0, 0, 1.0f, 0, 2.0f, 0}},
    {"dynmole", {MOLT_ROUTER_DYNMOLE, 0, 2, 2, 0.75f, 0.9f, 1.1f, 0}},
    {"dynmole_q1", {MOLT_ROUTER_DYNMOLE, 0, 2, 1, 0.75f, 0.9f, 1.0f, 0}},
    {"dynmole_q2", {MOLT_ROUTER_DYNMOLE, 0, 2, 1, 0.75f, 0.95f, 2.0f, 0}},
    /* q = 1: a uniform token has H = 1 + 1e-5 > threshold = 1, yet no fallback */
    {"dynmole_nosoft", {MOLT_ROUTER_DYNMOLE, 0, 2, 1, 0.75f, 1.0f, 1.0f, 0}},
    {"dynmole_keep0", {MOLT_ROUTER_DYNMOLE, 0, 2, 0, 0.6f, 1.5f, 0.5f, 0}},
    {"switch", {MOLT_ROUTER_SWITCH, 0, 1, 0, 0, 0, 1.1f, 0}},
    {"soft", {MOLT_ROUTER_SOFT, 0, 0, 0, 0, 0, 1.1f, 0}},
    {"ec", {MOLT_ROUTER_EXPERT_CHOICE, 0, 2, 0, 0, 0, 1.1f, 1.0f}},
    {"ec_half", {MOLT_ROUTER_EXPERT_CHOICE, 0, 1, 0, 0, 0, 1.1f, 0.5f}},
    {"factor", {MOLT_ROUTER_FACTOR, 0, 2, 0, 0, 0, 1.1f, 0}},
};

static const molt_aux_cfg AUX_ALL = {1, 1, 1, 0.5, 0.3, 0.2, 0.1, 0, 0, 0};

/* Buffers of one case, [T,N] unless noted. */
typedef struct {
    float *z, *p, *w, *self, *dw, *zero, *dp, *dz, *dzx;
    float *ent, *softf, *statf; /* [T], [T], [3N] */
    uint8_t *sel, *soft;        /* soft [T] */
    double *stats;              /* [3N] */
} case_bufs;

static void bufs_free(case_bufs *b) {
    free(b->z), free(b->p), free(b->w), free(b->self), free(b->dw), free(b->zero);
    free(b->dp), free(b->dz), free(b->dzx), free(b->ent), free(b->softf), free(b->statf),
        free(b->sel);
    free(b->soft);
    free(b->stats);
}

static int bufs_alloc(case_bufs *b, int T, int N) {
    int rc = MOLT_OK;
    size_t n = (size_t)T * N;
    float **f[] = {&b->z, &b->p, &b->w, &b->self, &b->dw, &b->zero, &b->dp, &b->dz, &b->dzx};
    for (size_t k = 0; k < sizeof f / sizeof *f; k++)
        MOLT_ALLOC(*f[k], n);
    MOLT_ALLOC(b->ent, T);
    MOLT_ALLOC(b->softf, T);
    MOLT_ALLOC(b->statf, 3 * N);
    MOLT_ALLOC(b->sel, n);
    MOLT_ALLOC(b->soft, T);
    MOLT_ALLOC(b->stats, 3 * N);
done:
    return rc;
}

/* Global stats as the sum of two micro-batches [0,split) and [split,T). */
static molt_router_stats global_stats(const molt_router_cfg *c, const case_bufs *b, int T,
                                      int split) {
    const int N = c->N;
    memset(b->stats, 0, sizeof(double) * 3 * N);
    molt_router_stats s = {b->stats, b->stats + N, b->stats + 2 * N, 0, 0, 0, 0, 0, 0};
    size_t o = (size_t)split * N;
    molt_router_stats_add(&s, c, b->z, b->p, b->w, b->sel, split);
    molt_router_stats_add(&s, c, b->z + o, b->p + o, b->w + o, b->sel + o, T - split);
    return s;
}

/* dp (before the softmax backward) and dz of `a` plus sum dw*w, per
 * micro-batch in the order of calls of include/molt/router.h. */
static void backward(const molt_aux_cfg *a, const molt_router_cfg *c, const molt_router_stats *g,
                     case_bufs *b, const float *dw, int T, int split) {
    const int N = c->N;
    memset(b->dp, 0, sizeof(float) * T * N);
    memset(b->dzx, 0, sizeof(float) * T * N);
    for (int i = 0; i < T * N; i++)
        b->dz[i] = NAN; /* must be overwritten */
    int lo[2] = {0, split}, hi[2] = {split, T};
    for (int h = 0; h < 2; h++) {
        size_t o = (size_t)lo[h] * N;
        int n = hi[h] - lo[h];
        if (a)
            molt_aux_backward(a, c, g, b->z + o, b->p + o, b->w + o, b->sel + o, n, b->dp + o,
                              b->dzx + o);
        molt_router_backward(c, b->p + o, b->w + o, b->sel + o, dw + o, b->dp + o, n, b->dz + o);
    }
    for (int i = 0; i < T * N; i++)
        b->dz[i] += b->dzx[i];
}

static int dump_case(hid_t file, const char *fname, int idx, const router_set *rs,
                     const input_set *in) {
    int rc = MOLT_OK;
    case_bufs b = {0};
    hid_t grp = -1;
    const int T = in->T, N = in->N, n = T * N, split = T / 2;
    molt_router_cfg c = rs->c;
    c.N = N;
    char name[64], path[128];
    snprintf(name, sizeof name, "%s/%s", rs->name, in->name);
    MOLT_TRY(bufs_alloc(&b, T, N));
    molt_rng g;
    molt_rng_init(&g, 777, MOLT_RNG_TEST, (uint64_t)(in - INPUTS), 0, 0); /* z: per input set */
    in->fill(b.z, T, N, &g);
    molt_rng_init(&g, 778, MOLT_RNG_TEST, (uint64_t)idx, 0, 0);
    for (int i = 0; i < n; i++)
        b.dw[i] = (float)molt_rng_normal(&g);

    long nsel = molt_router_forward(&c, b.z, T, b.p, b.w, b.sel, b.ent, b.soft);
    if (nsel < 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "case %s: router forward failed", name);
    for (int i = 0; i < n; i++)
        b.self[i] = b.sel[i];
    for (int t = 0; t < T; t++)
        b.softf[t] = b.soft[t];
    molt_router_stats s = global_stats(&c, &b, T, split);
    molt_aux_values v = molt_aux_loss(&AUX_ALL, &c, &s);

#define PUT(dsname, data, rows, cols)                                                              \
    do {                                                                                           \
        snprintf(path, sizeof path, "/case_%03d/%s", idx, dsname);                                 \
        MOLT_TRY(molt_h5_write_f32(file, fname, path, data, rows, cols));                          \
    } while (0)
    PUT("z", b.z, T, N);
    PUT("p", b.p, T, N);
    PUT("w", b.w, T, N);
    PUT("sel", b.self, T, N);
    PUT("ent", b.ent, T, 0);
    PUT("soft", b.softf, T, 0);
    PUT("dw", b.dw, T, N);
    for (int i = 0; i < 3 * N; i++)
        b.statf[i] = (float)b.stats[i];
    PUT("stat_count", b.statf, N, 0);
    PUT("stat_psum", b.statf + N, N, 0);
    PUT("stat_wsum", b.statf + 2 * N, N, 0);

    backward(NULL, &c, &s, &b, b.dw, T, split);
    PUT("dz_w", b.dz, T, N);
    backward(&AUX_ALL, &c, &s, &b, b.zero, T, split);
    PUT("dp_aux", b.dp, T, N);
    PUT("dz_aux", b.dz, T, N);
    const char *single[3] = {"dz_aux_balance", "dz_aux_dynmole", "dz_aux_zloss"};
    for (int k = 0; k < 3; k++) {
        molt_aux_cfg a = AUX_ALL;
        a.balance = k == 0, a.dynmole = k == 1, a.zloss = k == 2;
        backward(&a, &c, &s, &b, b.zero, T, split);
        PUT(single[k], b.dz, T, N);
    }
    backward(&AUX_ALL, &c, &s, &b, b.dw, T, split);
    PUT("dz", b.dz, T, N);
#undef PUT

    snprintf(path, sizeof path, "/case_%03d", idx);
    if ((grp = H5Gopen2(file, path, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot open group %s", fname, path);
    MOLT_TRY(molt_h5_write_attr_str(grp, fname, "name", name));
    MOLT_TRY(molt_h5_write_attr_str(grp, fname, "router", molt_router_names[c.kind]));
    const char *lnames[] = {"kind", "N", "T", "top_k", "keep_top_k", "capacity", "split", "nsel"};
    long lvals[] = {c.kind, N, T, c.top_k, c.keep_top_k, molt_router_capacity(&c, T), split, nsel};
    for (size_t k = 0; k < sizeof lvals / sizeof *lvals; k++)
        MOLT_TRY(molt_h5_write_attr_long(grp, fname, lnames[k], lvals[k]));
    const char *dnames[] = {"top_p",
                            "entropy_threshold",
                            "entropy_q",
                            "capacity_factor",
                            "balance_coef",
                            "dynmole_entropy_coef",
                            "dynmole_balance_coef",
                            "zloss_coef",
                            "aux_balance",
                            "aux_dynmole",
                            "aux_zloss",
                            "stat_ent_sum",
                            "stat_zsum",
                            "stat_tokens",
                            "stat_selections"};
    double dvals[] = {c.top_p,
                      c.entropy_threshold,
                      c.entropy_q,
                      c.capacity_factor,
                      AUX_ALL.balance_coef,
                      AUX_ALL.dynmole_entropy_coef,
                      AUX_ALL.dynmole_balance_coef,
                      AUX_ALL.zloss_coef,
                      v.balance,
                      v.dynmole,
                      v.zloss,
                      s.ent_sum,
                      s.zsum,
                      s.tokens,
                      s.selections};
    for (size_t k = 0; k < sizeof dvals / sizeof *dvals; k++)
        MOLT_TRY(attr_f64(grp, fname, dnames[k], dvals[k]));
done:
    if (grp >= 0) H5Gclose(grp);
    bufs_free(&b);
    return rc;
}

static int run(int argc, char **argv) {
    int rc = MOLT_OK, idx = 0;
    hid_t file = -1;
    if (argc != 2) MOLT_FAIL(MOLT_ERR_INPUT, "usage: router_dump OUT.h5");
    MOLT_TRY(molt_h5_create(&file, argv[1], "", 0));
    MOLT_TRY(molt_h5_write_attr_str(file, argv[1], "dump", "router"));
    for (size_t r = 0; r < sizeof ROUTERS / sizeof *ROUTERS; r++)
        for (size_t i = 0; i < sizeof INPUTS / sizeof *INPUTS; i++)
            MOLT_TRY(dump_case(file, argv[1], idx++, &ROUTERS[r], &INPUTS[i]));
    MOLT_TRY(molt_h5_write_attr_long(file, argv[1], "ncases", idx));
    printf("router_dump: %d cases -> %s\n", idx, argv[1]);
done:
    if (file >= 0) H5Fclose(file);
    return rc;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rc = run(argc, argv);
    MPI_Finalize();
    return rc;
}
