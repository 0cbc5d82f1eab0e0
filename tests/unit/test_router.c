/* test_router.c — routers and auxiliary losses (include/molt/router.h):
 * selection edge cases against hand-worked answers, entropy values, capacity
 * rounding, and finite-difference checks of every backward. */
#include <string.h>

#include "molt/rng.h"
#include "molt/router.h"
#include "testutil.h"

enum { MAXT = 64, MAXN = 16 };

typedef struct {
    float p[MAXT * MAXN], w[MAXT * MAXN], ent[MAXT];
    uint8_t sel[MAXT * MAXN], soft[MAXT];
    long n;
} routed;

static molt_router_cfg cfg(int kind, int N) {
    molt_router_cfg c = {kind, N, 2, 2, 0.75f, 0.9f, 1.1f, 1.0f};
    return c;
}

static void route(const molt_router_cfg *c, const float *z, int T, routed *r) {
    memset(r, 0, sizeof *r);
    r->n = molt_router_forward(c, z, T, r->p, r->w, r->sel, r->ent, r->soft);
}

static int nsel(const routed *r, int t, int N) {
    int n = 0;
    for (int i = 0; i < N; i++)
        n += r->sel[t * N + i];
    return n;
}

static void fill_normal(float *x, int n, float scale, uint64_t seed) {
    molt_rng g;
    molt_rng_init(&g, seed, MOLT_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < n; i++)
        x[i] = scale * (float)molt_rng_normal(&g);
}

/* z = log of an exactly representable distribution: p comes out exact. */
static void log_row(float *z, const double *p, int N) {
    for (int i = 0; i < N; i++)
        z[i] = (float)log(p[i]);
}

static void test_single_expert(void) {
    float z[5] = {0.3f, -2.0f, 7.0f, 0.0f, 1e-3f};
    for (int kind = 0; kind < MOLT_NROUTERS; kind++) {
        molt_router_cfg c = cfg(kind, 1);
        routed r;
        route(&c, z, 5, &r);
        CU_ASSERT_EQUAL(r.n, 5);
        for (int t = 0; t < 5; t++) {
            CU_ASSERT_EQUAL(r.sel[t], 1);
            CU_ASSERT_EQUAL(r.p[t], 1.0f);
            CU_ASSERT_EQUAL(r.w[t], 1.0f); /* p = 1, renormalised = 1, N/k = 1 */
            CU_ASSERT_EQUAL(r.ent[t], 0.0f);
            CU_ASSERT_EQUAL(r.soft[t], 0);
        }
    }
}

static void test_k_at_least_n(void) {
    float z[6] = {0.1f, -0.4f, 1.2f, 2.0f, 2.0f, -3.0f};
    molt_router_cfg c = cfg(MOLT_ROUTER_TOPK, 3);
    c.top_k = 7;
    routed r;
    route(&c, z, 2, &r);
    CU_ASSERT_EQUAL(r.n, 6);
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(r.sel[i], 1);
        CU_ASSERT(fabsf(r.w[i] - r.p[i]) < 1e-6f);
    }
    c.kind = MOLT_ROUTER_FACTOR;
    route(&c, z, 2, &r);
    for (int i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(r.w[i], 1.0f); /* N/k with k = N */
}

static void test_ties_lower_index(void) {
    const int N = 4;
    float z[3 * 4] = {1, 1, 1, 1, 0, 2, 2, 1, 5, 0, 5, 5};
    molt_router_cfg c = cfg(MOLT_ROUTER_TOPK, N);
    routed r;
    route(&c, z, 3, &r);
    uint8_t want_topk[12] = {1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0};
    CU_ASSERT(!memcmp(r.sel, want_topk, 12));
    CU_ASSERT_EQUAL(r.w[0], 0.5f);
    c.kind = MOLT_ROUTER_SWITCH;
    route(&c, z, 3, &r);
    uint8_t want_switch[12] = {1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0};
    CU_ASSERT(!memcmp(r.sel, want_switch, 12));
    c.kind = MOLT_ROUTER_FACTOR;
    c.top_k = 3;
    route(&c, z, 3, &r);
    uint8_t want_factor[12] = {1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1};
    CU_ASSERT(!memcmp(r.sel, want_factor, 12));
    CU_ASSERT(fabsf(r.w[0] - 4.0f / 3.0f) < 1e-7f);
    /* topp on a uniform row: 0.5 needs two of four equal experts: 0 and 1 */
    c.kind = MOLT_ROUTER_TOPP;
    c.top_p = 0.5f;
    route(&c, z, 1, &r);
    CU_ASSERT(r.sel[0] && r.sel[1] && !r.sel[2] && !r.sel[3]);
    /* expert choice: equal p over tokens -> lower token index */
    float ze[4 * 2] = {0, 0, 0, 0, 0, 0, 0, 0};
    molt_router_cfg e = cfg(MOLT_ROUTER_EXPERT_CHOICE, 2);
    e.top_k = 1; /* C = 1 * 4 * 1 / 2 = 2 */
    route(&e, ze, 4, &r);
    uint8_t want_ec[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    CU_ASSERT(!memcmp(r.sel, want_ec, 8));
    CU_ASSERT_EQUAL(r.n, 4);
}

static void test_entropy_values(void) {
    float uni[4] = {0.25f, 0.25f, 0.25f, 0.25f}, one[4] = {1, 0, 0, 0};
    float half[4] = {0.5f, 0.25f, 0.125f, 0.125f};
    double qs[3] = {1.0, 1.1, 2.0};
    for (int j = 0; j < 3; j++) { /* up to the 1e-5 shift (3e-4 at q = 1.1) */
        CU_ASSERT(fabs(molt_tsallis_entropy(uni, 4, qs[j]) - 1.0) < 1e-3);
        CU_ASSERT(fabs(molt_tsallis_entropy(one, 4, qs[j])) < 1e-3);
        CU_ASSERT_EQUAL(molt_tsallis_entropy(one, 1, qs[j]), 0.0);
    }
    /* Shannon: (0.5 ln2 + 0.25*2 ln2 + 2*0.125*3 ln2)/ln4 = 1.75/2 = 0.875;
     * q=2: (1 - (0.25 + 0.0625 + 2*0.015625)) / (1 - 1/4) = 0.65625/0.75 = 0.875;
     * q=0.5: (1 - (sqrt .5 + .5 + 2 sqrt .125)) / (1 - 2) = 0.9142136 */
    CU_ASSERT(fabs(molt_tsallis_entropy(half, 4, 1.0) - 0.875) < 1e-4);
    CU_ASSERT(fabs(molt_tsallis_entropy(half, 4, 2.0) - 0.875) < 1e-4);
    CU_ASSERT(fabs(molt_tsallis_entropy(half, 4, 0.5) - 0.9142136) < 1e-4);
    /* the 1e-5 shift is inside: q = 2 on uniform N = 2 is
     * (1 - 2 (0.5 + 1e-5)^2) / 0.5 = 1 - 4e-5 - 4e-10 */
    float u2[2] = {0.5f, 0.5f};
    CU_ASSERT(fabs(molt_tsallis_entropy(u2, 2, 2.0) - (1.0 - 4e-5 - 4e-10)) < 1e-12);
}

static void test_entropy_threshold_disables_soft(void) {
    const int N = 4;
    float z[2 * 4] = {0, 0, 0, 0, 0.1f, 0, 0, 0};
    molt_router_cfg c = cfg(MOLT_ROUTER_DYNMOLE, N);
    c.entropy_q = 1.0f;
    c.keep_top_k = 1;
    c.entropy_threshold = 1.0f; /* uniform H = 1 + O(1e-5) > 1: still not soft */
    routed r;
    route(&c, z, 2, &r);
    CU_ASSERT(r.ent[0] > 1.0f);
    CU_ASSERT_EQUAL(r.soft[0], 0);
    CU_ASSERT_EQUAL(r.soft[1], 0);
    CU_ASSERT_EQUAL(nsel(&r, 0, N), 3); /* c = .25 .5 .75 <= .75: three kept */
    c.entropy_threshold = 0.99f;
    route(&c, z, 2, &r);
    CU_ASSERT_EQUAL(r.soft[0], 1);
    CU_ASSERT_EQUAL(r.soft[1], 1);
    CU_ASSERT_EQUAL(r.n, 8);
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(r.w[i], r.p[i]);
    /* q = 2 decides with its own entropy: H_2 = 0.99997 (row 0), 0.99931
     * (row 1: sum p^2 = 0.250492) around 0.9995 */
    c.entropy_q = 2.0f;
    c.entropy_threshold = 0.9995f;
    route(&c, z, 2, &r);
    CU_ASSERT(fabs(r.ent[1] - molt_tsallis_entropy(r.p + 4, 4, 2.0)) < 1e-7);
    CU_ASSERT_EQUAL(r.soft[0], 1);
    CU_ASSERT_EQUAL(r.soft[1], 0);
}

static void test_top_p_exact_threshold(void) {
    const int N = 4;
    double p0[4] = {0.5, 0.25, 0.125, 0.125}, p1[4] = {0.125, 0.125, 0.25, 0.5};
    float z[8];
    log_row(z, p0, N);
    log_row(z + 4, p1, N);
    molt_router_cfg c = cfg(MOLT_ROUTER_TOPP, N);
    c.top_p = 0.75f;
    routed r;
    route(&c, z, 2, &r);
    for (int i = 0; i < 4; i++) { /* the construction must give p exactly */
        CU_ASSERT_EQUAL(r.p[i], (float)p0[i]);
        CU_ASSERT_EQUAL(r.p[4 + i], (float)p1[i]);
    }
    uint8_t want[8] = {1, 1, 0, 0, 0, 0, 1, 1}; /* 0.5 + 0.25 = 0.75 >= 0.75 */
    CU_ASSERT(!memcmp(r.sel, want, 8));
    CU_ASSERT_EQUAL(r.w[0], 0.5f); /* not renormalised */
    c.top_p = 0.76f;
    route(&c, z, 2, &r);
    CU_ASSERT_EQUAL(nsel(&r, 0, N), 3); /* crossing expert kept */
    /* dynmole: c = 0.75 <= 0.75 keeps the second expert too */
    c.kind = MOLT_ROUTER_DYNMOLE;
    c.top_p = 0.75f;
    c.keep_top_k = 1;
    c.entropy_threshold = 1.0f;
    route(&c, z, 2, &r);
    CU_ASSERT(!memcmp(r.sel, want, 8));
    c.top_p = 0.74f; /* now the crossing second expert is dropped */
    route(&c, z, 2, &r);
    uint8_t want1[8] = {1, 0, 0, 0, 0, 0, 0, 1};
    CU_ASSERT(!memcmp(r.sel, want1, 8));
    c.top_p = 0.4f; /* nothing under top_p: keep_top_k = 1 still keeps one */
    route(&c, z, 2, &r);
    CU_ASSERT(!memcmp(r.sel, want1, 8));
    c.keep_top_k = 3;
    route(&c, z, 2, &r);
    CU_ASSERT_EQUAL(nsel(&r, 0, N), 3);
    CU_ASSERT_EQUAL(nsel(&r, 1, N), 3);
    c.keep_top_k = 0; /* nothing kept at all */
    route(&c, z, 2, &r);
    CU_ASSERT_EQUAL(r.n, 0);
}

static void test_top_p_one_keeps_all(void) {
    const int N = 8, T = 40;
    float z[40 * 8];
    fill_normal(z, T * N, 3.0f, 11);
    z[0] = 40.0f; /* one token whose other experts have p ~ 1e-17 */
    molt_router_cfg c = cfg(MOLT_ROUTER_TOPP, N);
    c.top_p = 1.0f;
    routed r;
    route(&c, z, T, &r);
    CU_ASSERT_EQUAL(r.n, (long)T * N);
    for (int i = 0; i < T * N; i++)
        CU_ASSERT_EQUAL(r.w[i], r.p[i]);
    c.kind = MOLT_ROUTER_DYNMOLE;
    c.entropy_threshold = 1.0f;
    route(&c, z, T, &r);
    CU_ASSERT_EQUAL(r.n, (long)T * N);
}

static void test_expert_choice_capacity(void) {
    molt_router_cfg c = cfg(MOLT_ROUTER_EXPERT_CHOICE, 4);
    CU_ASSERT_EQUAL(molt_router_capacity(&c, 8), 4); /* 1*8*2/4 */
    c.capacity_factor = 1.25f;
    CU_ASSERT_EQUAL(molt_router_capacity(&c, 8), 5); /* 5 exactly */
    c.capacity_factor = 1.3f;
    CU_ASSERT_EQUAL(molt_router_capacity(&c, 8), 6); /* ceil(5.2) */
    c.capacity_factor = 1.1f, c.top_k = 1, c.N = 11;
    CU_ASSERT_EQUAL(molt_router_capacity(&c, 100), 10); /* 1.1f*100/11 = 10.0000002 */
    c.capacity_factor = 0.01f;
    CU_ASSERT_EQUAL(molt_router_capacity(&c, 100), 1); /* at least 1 */
    c.capacity_factor = 50.0f;
    CU_ASSERT_EQUAL(molt_router_capacity(&c, 100), 100); /* at most T */
    c.capacity_factor = 1.0f, c.top_k = 9, c.N = 4;      /* k clamps to N */
    CU_ASSERT_EQUAL(molt_router_capacity(&c, 6), 6);

    /* 6 tokens, 3 experts, k = 1: C = 2. Expert 0 is everyone's favourite,
     * expert 2 nobody's: a token may get several experts or none. */
    const int T = 6, N = 3;
    float z[6 * 3] = {3, 1, 0, 2.5f, 1, 0, 2, 2.2f, 0, 1, 0, 0, 0.5f, 0, 0, 4, 0, 3.9f};
    molt_router_cfg e = cfg(MOLT_ROUTER_EXPERT_CHOICE, N);
    e.top_k = 1;
    routed r;
    route(&e, z, T, &r);
    CU_ASSERT_EQUAL(r.n, 6);
    int per_expert[3] = {0, 0, 0};
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) {
            per_expert[i] += r.sel[t * N + i];
            CU_ASSERT_EQUAL(r.w[t * N + i], r.sel[t * N + i] ? r.p[t * N + i] : 0.0f);
        }
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(per_expert[i], 2);
    /* p[:,0] = .84 .77 .42 .58 .45 .52 -> tokens 0, 1 (not 5, its favourite);
     * p[:,1] = .11 .17 .52 .21 .27 .01 -> tokens 2, 4;
     * p[:,2] = .04 .06 .06 .21 .27 .47 -> tokens 5, 4; token 3 gets nothing. */
    uint8_t want[6 * 3] = {1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1};
    CU_ASSERT(!memcmp(r.sel, want, sizeof want));
}

static void test_bad_arguments(void) {
    molt_router_cfg c = cfg(MOLT_ROUTER_TOPK, 0);
    float z[1] = {0}, p[1], w[1];
    uint8_t s[1];
    CU_ASSERT_EQUAL(molt_router_forward(&c, z, 1, p, w, s, NULL, NULL), -1);
    c.N = 1;
    c.kind = MOLT_NROUTERS;
    CU_ASSERT_EQUAL(molt_router_forward(&c, z, 1, p, w, s, NULL, NULL), -1);
    c.kind = MOLT_ROUTER_SOFT;
    CU_ASSERT_EQUAL(molt_router_forward(&c, z, 0, p, w, s, NULL, NULL), 0);
}

/* L(z) = sum dw*w + sum dp*p at a fixed selection (asserted unchanged). */
static double router_objective(const molt_router_cfg *c, const float *z, int T, const float *dw,
                               const float *dp, const uint8_t *sel0) {
    routed r;
    route(c, z, T, &r);
    CU_ASSERT(!memcmp(r.sel, sel0, (size_t)T * c->N));
    double L = 0;
    for (int i = 0; i < T * c->N; i++)
        L += (double)dw[i] * r.w[i] + (double)dp[i] * r.p[i];
    return L;
}

static double max_abs(const float *x, int n) {
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* Central differences over every z: max |fd - analytic| / max |analytic|. */
static double fd_router_error(const molt_router_cfg *c, float *z, int T, uint64_t seed) {
    const int n = T * c->N;
    float dw[MAXT * MAXN], dp[MAXT * MAXN], dz[MAXT * MAXN];
    fill_normal(dw, n, 1.0f, seed + 1);
    fill_normal(dp, n, 0.5f, seed + 2);
    routed r;
    route(c, z, T, &r);
    memset(dz, 0, sizeof dz);
    molt_router_backward(c, r.p, r.w, r.sel, dw, dp, T, dz);
    double err = 0;
    const float h = 1e-2f;
    for (int i = 0; i < n; i++) {
        float z0 = z[i];
        z[i] = z0 + h;
        double Lp = router_objective(c, z, T, dw, dp, r.sel);
        z[i] = z0 - h;
        double Lm = router_objective(c, z, T, dw, dp, r.sel);
        z[i] = z0;
        double fd = (Lp - Lm) / ((double)(z0 + h) - (double)(z0 - h));
        err = fmax(err, fabs(fd - dz[i]));
    }
    return err / max_abs(dz, n);
}

/* Logits whose selections sit far from every boundary: one token per row
 * pattern, with gaps of >= 0.3 between consecutive logits. */
static void spread_logits(float *z, int T, int N, uint64_t seed) {
    molt_rng g;
    molt_rng_init(&g, seed, MOLT_RNG_TEST, 0, 0, 0);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < N; i++)
            z[t * N + i] = 0.5f * (float)i;
        for (int i = N - 1; i > 0; i--) { /* shuffle the row */
            int j = (int)molt_rng_below(&g, (uint32_t)(i + 1));
            float x = z[t * N + i];
            z[t * N + i] = z[t * N + j], z[t * N + j] = x;
        }
        /* distinct scales per token keep expert choice's per-expert ranking
         * over tokens free of near-ties too */
        for (int i = 0; i < N; i++)
            z[t * N + i] *= (t % 2) ? 2.5f + 0.35f * t : 0.4f + 0.06f * t;
    }
}

static void test_router_backward_fd(void) {
    const int T = 6, N = 5;
    int kinds[] = {MOLT_ROUTER_TOPK, MOLT_ROUTER_TOPP,   MOLT_ROUTER_DYNMOLE,
                   MOLT_ROUTER_SOFT, MOLT_ROUTER_SWITCH, MOLT_ROUTER_EXPERT_CHOICE};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        float z[6 * 5];
        spread_logits(z, T, N, 100 + k);
        molt_router_cfg c = cfg(kinds[k], N);
        c.top_p = 0.7f;
        c.entropy_threshold = 0.95f; /* the flat (even) rows fall back to soft */
        routed r;
        route(&c, z, T, &r);
        if (kinds[k] == MOLT_ROUTER_DYNMOLE) {
            int soft = 0;
            for (int t = 0; t < T; t++)
                soft += r.soft[t];
            CU_ASSERT(soft > 0 && soft < T);
        }
        double err = fd_router_error(&c, z, T, 7 * k);
        CU_ASSERT(err < 2e-3);
        if (err >= 2e-3)
            fprintf(stderr, "router %s: fd error %.3g\n", molt_router_names[kinds[k]], err);
    }
    /* factor: w is constant, only the aux dp reaches z */
    float z[6 * 5];
    spread_logits(z, T, N, 3);
    molt_router_cfg c = cfg(MOLT_ROUTER_FACTOR, N);
    CU_ASSERT(fd_router_error(&c, z, T, 5) < 2e-3);
    /* the backward overwrites dz: factor's dz from w alone is exactly 0 */
    routed r;
    route(&c, z, T, &r);
    float dw[30], dz[30];
    fill_normal(dw, 30, 1.0f, 9);
    for (int i = 0; i < 30; i++)
        dz[i] = 1.0f;
    molt_router_backward(&c, r.p, r.w, r.sel, dw, NULL, T, dz);
    for (int i = 0; i < 30; i++)
        CU_ASSERT_EQUAL(dz[i], 0.0f);
}

static void zero_stats(molt_router_stats *s, double *buf, int N) {
    memset(buf, 0, sizeof(double) * 3 * N);
    *s = (molt_router_stats){buf, buf + N, buf + 2 * N, 0, 0, 0, 0, 0, 0};
}

static void test_stats_and_loss_values(void) {
    /* T = N, token t prefers expert t by the same margin: perfectly balanced.
     * switch: f_i = 1/N, P_i = 1/N -> balance = coef * N * N / N^2 = coef. */
    enum { N = 4 };
    float z[N * N];
    for (int t = 0; t < N; t++)
        for (int i = 0; i < N; i++)
            z[t * N + i] = t == i ? 2.0f : 0.0f;
    molt_router_cfg c = cfg(MOLT_ROUTER_SWITCH, N);
    routed r;
    route(&c, z, N, &r);
    double buf[3 * N];
    molt_router_stats s;
    zero_stats(&s, buf, N);
    molt_router_stats_add(&s, &c, z, r.p, r.w, r.sel, 2);
    molt_router_stats_add(&s, &c, z + 2 * N, r.p + 2 * N, r.w + 2 * N, r.sel + 2 * N, 2);
    CU_ASSERT_EQUAL(s.tokens, N);
    CU_ASSERT_EQUAL(s.selections, N);
    double lse = log(exp(2.0) + 3.0);
    CU_ASSERT(fabs(s.zsum - N * lse * lse) < 1e-5);
    molt_aux_cfg a = {1, 1, 1, 0.01, 0.1, 0.2, 0.001, 0, 0, 0};
    molt_aux_values v = molt_aux_loss(&a, &c, &s);
    CU_ASSERT(fabs(v.balance - 0.01) < 1e-8);
    CU_ASSERT(fabs(v.zloss - 0.001 * lse * lse) < 1e-8);
    /* dynmole: f_i = mean w_i = p_max / N, P_i = 1/N */
    double pmax = exp(2.0) / (exp(2.0) + 3.0);
    double H = molt_tsallis_entropy(r.p, N, 1.1);
    CU_ASSERT(fabs(v.dynmole - (0.1 * H + 0.2 * N * N * (pmax / N) / N)) < 1e-6);
    /* all on expert 0 with switch: f_0 = 1, balance = coef * N * P_0 */
    for (int t = 0; t < N; t++)
        z[t * N] = 5.0f, z[t * N + t] = t ? 0.0f : 5.0f;
    route(&c, z, N, &r);
    zero_stats(&s, buf, N);
    molt_router_stats_add(&s, &c, z, r.p, r.w, r.sel, N);
    v = molt_aux_loss(&a, &c, &s);
    CU_ASSERT(fabs(v.balance - 0.01 * N * s.psum[0] / N) < 1e-8);
    /* topp: k is the mean number of experts per token */
    c.kind = MOLT_ROUTER_TOPP;
    c.top_p = 0.999f;
    route(&c, z, N, &r);
    zero_stats(&s, buf, N);
    molt_router_stats_add(&s, &c, z, r.p, r.w, r.sel, N);
    double k = s.selections / s.tokens, want = 0;
    CU_ASSERT(k > 1.0);
    for (int i = 0; i < N; i++)
        want += s.count[i] / (N * k) * s.psum[i] / N;
    v = molt_aux_loss(&a, &c, &s);
    CU_ASSERT(fabs(v.balance - 0.01 * N * want) < 1e-8);
    zero_stats(&s, buf, N);
    v = molt_aux_loss(&a, &c, &s); /* no tokens: nothing, no NaN */
    CU_ASSERT(v.balance == 0 && v.dynmole == 0 && v.zloss == 0);
}

/* Full aux gradient wrt z, in the header's order of calls: aux_backward into
 * (dp, dzx), dp through the softmax backward into dz, then dz += dzx. */
static void aux_grad(const molt_aux_cfg *a, const molt_router_cfg *c, const molt_router_stats *g,
                     const float *z, const routed *r, int T, float *dz) {
    float dp[MAXT * MAXN], dzx[MAXT * MAXN], zero[MAXT * MAXN];
    memset(dp, 0, sizeof dp);
    memset(dzx, 0, sizeof dzx);
    memset(zero, 0, sizeof zero);
    for (int i = 0; i < T * c->N; i++)
        dz[i] = 123.0f; /* overwritten */
    molt_aux_backward(a, c, g, z, r->p, r->w, r->sel, T, dp, dzx);
    molt_router_backward(c, r->p, r->w, r->sel, zero, dp, T, dz);
    for (int i = 0; i < T * c->N; i++)
        dz[i] += dzx[i];
}

/* Aux loss at z with the stats of this batch, or (frozen) with the dynmole
 * balance f taken from f0 instead of the current w. */
static double aux_objective(const molt_aux_cfg *a, const molt_router_cfg *c, const float *z, int T,
                            const uint8_t *sel0, const double *f0) {
    routed r;
    route(c, z, T, &r);
    CU_ASSERT(!memcmp(r.sel, sel0, (size_t)T * c->N));
    double buf[3 * MAXN];
    molt_router_stats s;
    zero_stats(&s, buf, c->N);
    molt_router_stats_add(&s, c, z, r.p, r.w, r.sel, T);
    if (f0)
        for (int i = 0; i < c->N; i++)
            s.wsum[i] = f0[i] * s.tokens;
    molt_aux_values v = molt_aux_loss(a, c, &s);
    return v.balance + v.dynmole + v.zloss;
}

static double fd_aux_error(const molt_aux_cfg *a, const molt_router_cfg *c, float *z, int T,
                           int freeze_f) {
    const int N = c->N, n = T * N;
    routed r;
    route(c, z, T, &r);
    double buf[3 * MAXN], f0[MAXN];
    molt_router_stats g;
    zero_stats(&g, buf, N);
    molt_router_stats_add(&g, c, z, r.p, r.w, r.sel, T);
    for (int i = 0; i < N; i++)
        f0[i] = g.wsum[i] / g.tokens;
    float dz[MAXT * MAXN];
    aux_grad(a, c, &g, z, &r, T, dz);
    double err = 0;
    const float h = 1e-2f;
    for (int i = 0; i < n; i++) {
        float z0 = z[i];
        z[i] = z0 + h;
        double Lp = aux_objective(a, c, z, T, r.sel, freeze_f ? f0 : NULL);
        z[i] = z0 - h;
        double Lm = aux_objective(a, c, z, T, r.sel, freeze_f ? f0 : NULL);
        z[i] = z0;
        double fd = (Lp - Lm) / ((double)(z0 + h) - (double)(z0 - h));
        err = fmax(err, fabs(fd - dz[i]));
    }
    return err / max_abs(dz, n);
}

static void test_aux_backward_fd(void) {
    const int T = 8, N = 5;
    float z[8 * 5];
    spread_logits(z, T, N, 77);
    molt_aux_cfg bal = {1, 0, 0, 0.5, 0, 0, 0, 0, 0, 0};
    int kinds[] = {MOLT_ROUTER_TOPK, MOLT_ROUTER_TOPP, MOLT_ROUTER_SWITCH, MOLT_ROUTER_FACTOR};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        molt_router_cfg c = cfg(kinds[k], N);
        c.top_p = 0.7f;
        double e = fd_aux_error(&bal, &c, z, T, 0);
        CU_ASSERT(e < 2e-3);
        if (e >= 2e-3)
            fprintf(stderr, "balance %s: fd error %.3g\n", molt_router_names[kinds[k]], e);
    }
    { /* soft (and expert choice): f_i = 1/N, the loss is coef whatever p */
        molt_router_cfg c = cfg(MOLT_ROUTER_SOFT, N);
        routed r;
        route(&c, z, T, &r);
        double buf[3 * MAXN];
        molt_router_stats g;
        zero_stats(&g, buf, N);
        molt_router_stats_add(&g, &c, z, r.p, r.w, r.sel, T);
        CU_ASSERT(fabs(molt_aux_loss(&bal, &c, &g).balance - 0.5) < 1e-6);
        float dz[8 * 5];
        aux_grad(&bal, &c, &g, z, &r, T, dz);
        CU_ASSERT(max_abs(dz, T * N) < 1e-7);
    }
    molt_router_cfg c = cfg(MOLT_ROUTER_DYNMOLE, N);
    c.top_p = 0.7f;
    c.entropy_threshold = 0.95f;
    float qs[3] = {1.0f, 1.1f, 2.0f};
    for (int j = 0; j < 3; j++) { /* entropy part alone */
        c.entropy_q = qs[j];
        molt_aux_cfg ent = {0, 1, 0, 0, 0.3, 0, 0, 0, 0, 0};
        CU_ASSERT(fd_aux_error(&ent, &c, z, T, 0) < 2e-3);
    }
    molt_aux_cfg dyn = {0, 1, 0, 0, 0.3, 0.2, 0, 0, 0, 0}; /* both parts, f frozen */
    CU_ASSERT(fd_aux_error(&dyn, &c, z, T, 1) < 2e-3);
    molt_aux_cfg zl = {0, 0, 1, 0, 0, 0, 0.1, 0, 0, 0};
    CU_ASSERT(fd_aux_error(&zl, &c, z, T, 0) < 2e-3);
    molt_aux_cfg all = {1, 1, 1, 0.5, 0.3, 0.2, 0.1, 0, 0, 0};
    CU_ASSERT(fd_aux_error(&all, &c, z, T, 1) < 2e-3);
}

int main(int argc, char **argv) {
    molt_test_case cases[] = {
        {"N = 1: every router selects expert 0", test_single_expert},
        {"k >= N keeps all", test_k_at_least_n},
        {"ties go to the lower index", test_ties_lower_index},
        {"Tsallis entropy values", test_entropy_values},
        {"entropy_threshold >= 1 disables soft", test_entropy_threshold_disables_soft},
        {"top-p exactly on the threshold", test_top_p_exact_threshold},
        {"top_p = 1 keeps all", test_top_p_one_keeps_all},
        {"expert-choice capacity", test_expert_choice_capacity},
        {"bad arguments", test_bad_arguments},
        {"router backward vs finite differences", test_router_backward_fd},
        {"stats and aux loss values", test_stats_and_loss_values},
        {"aux backward vs finite differences", test_aux_backward_fd},
        {NULL, NULL}};
    return molt_run_suite(argc, argv, "router", cases);
}
