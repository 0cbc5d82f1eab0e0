/* router.c — MoE routers and auxiliary losses (include/molt/router.h,
 * DESIGN §3–§4). Per token: p = softmax(z), then a discrete selection and the
 * combine weights. Sums that decide a selection (top-p cumulative sums,
 * entropies) and every reduction run in double in a fixed order, so results
 * do not depend on the thread count. */
#include "molt/router.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"

const char *const molt_router_names[MOLT_NROUTERS] = {"topk", "topp",          "dynmole", "switch",
                                                      "soft", "expert_choice", "factor"};

/* The p~ = p + 1e-5 shift of DESIGN §3 (keeps log and pow finite at p = 0). */
#define ENTROPY_SHIFT 1e-5

/* A candidate in a descending sort: value and index (token or expert). */
typedef struct {
    float v;
    int i;
} ranked;

/* Descending by value; ties go to the lower index, so the order is total and
 * qsort's instability cannot show. */
static int ranked_cmp(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Experts per token of the hard top-k routers: top_k clamped to [1, N]. */
static int router_k(const molt_router_cfg *c) {
    int k = c->top_k < 1 ? 1 : c->top_k;
    return k > c->N ? c->N : k;
}

int molt_router_capacity(const molt_router_cfg *c, int T) {
    if (T <= 0 || c->N <= 0) return 0;
    /* The (1 - 1e-6) factor keeps an fp32 capacity_factor such as 1.1f
     * (= 1.10000002) from rounding an exact integer product up by one. */
    double x = (double)c->capacity_factor * T * router_k(c) / c->N;
    double C = ceil(x * (1.0 - 1e-6));
    if (!(C >= 1.0)) return 1; /* also catches NaN */
    return C > T ? T : (int)C;
}

double molt_tsallis_entropy(const float *p, int N, double q) {
    if (N <= 1) return 0.0;
    double s = 0.0;
    if (q == 1.0) {
        for (int i = 0; i < N; i++) {
            double pt = (double)p[i] + ENTROPY_SHIFT;
            s -= pt * log(pt);
        }
        return s / log((double)N);
    }
    /* [(1 - sum p~^q)/(q-1)] / [(1 - N^(1-q))/(q-1)]: the (q-1) cancel. */
    for (int i = 0; i < N; i++)
        s += pow((double)p[i] + ENTROPY_SHIFT, q);
    return (1.0 - s) / (1.0 - pow((double)N, 1.0 - q));
}

/* dp[i] += scale * dH_q/dp_i (same shift and normaliser as above). */
static void tsallis_entropy_grad_add(const float *p, int N, double q, double scale, float *dp) {
    if (N <= 1) return;
    if (q == 1.0) {
        double norm = scale / log((double)N);
        for (int i = 0; i < N; i++)
            dp[i] += (float)(-norm * (log((double)p[i] + ENTROPY_SHIFT) + 1.0));
        return;
    }
    double norm = scale / (1.0 - pow((double)N, 1.0 - q));
    for (int i = 0; i < N; i++)
        dp[i] += (float)(-norm * q * pow((double)p[i] + ENTROPY_SHIFT, q - 1.0));
}

/* p[N] = softmax(z[N]) in fp32, the sum accumulated in double. */
static void softmax_row(const float *z, float *p, int N) {
    float mx = z[0];
    for (int i = 1; i < N; i++)
        if (z[i] > mx) mx = z[i];
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        p[i] = expf(z[i] - mx);
        sum += p[i];
    }
    for (int i = 0; i < N; i++)
        p[i] = (float)((double)p[i] / sum);
}

static double logsumexp_row(const float *z, int N) {
    float mx = z[0];
    for (int i = 1; i < N; i++)
        if (z[i] > mx) mx = z[i];
    double sum = 0.0;
    for (int i = 0; i < N; i++)
        sum += exp((double)z[i] - mx);
    return mx + log(sum);
}

/* r[N] = experts of one token sorted by p descending (lower index on ties). */
static void rank_experts(const float *p, int N, ranked *r) {
    for (int i = 0; i < N; i++)
        r[i] = (ranked){p[i], i};
    qsort(r, (size_t)N, sizeof *r, ranked_cmp);
}

/* Length of the smallest sorted prefix whose sum reaches top_p (the crossing
 * expert kept). top_p >= 1 keeps all N: in exact arithmetic every shorter
 * prefix of a softmax sums to < 1, and fp32 rounding of p must not drop an
 * expert; likewise a sum that never reaches top_p keeps all N. */
static int topp_count(const ranked *r, int N, double top_p) {
    if (top_p >= 1.0) return N;
    double cs = 0.0;
    for (int j = 0; j < N; j++) {
        cs += r[j].v;
        if (cs >= top_p) return j + 1;
    }
    return N;
}

/* DynMoLE: the prefix with c_j <= top_p (the crossing expert NOT kept), at
 * least keep_top_k (clamped to [0, N]); top_p >= 1 keeps all N as above. */
static int dynmole_count(const ranked *r, int N, double top_p, int keep_top_k) {
    int n = 0;
    if (top_p >= 1.0) {
        n = N;
    } else {
        double cs = 0.0;
        for (int j = 0; j < N; j++) {
            cs += r[j].v;
            if (cs > top_p) break;
            n = j + 1;
        }
    }
    int keep = keep_top_k < 0 ? 0 : keep_top_k > N ? N : keep_top_k;
    return n > keep ? n : keep;
}

/* Select for one token (every router but expert_choice): marks sel, writes w,
 * returns the number selected. `h` is H_q(p), `soft` receives the fallback. */
static int route_token(const molt_router_cfg *c, const float *p, float *w, uint8_t *sel, ranked *r,
                       double h, uint8_t *soft) {
    const int N = c->N;
    int n = 0;
    *soft = 0;
    memset(sel, 0, (size_t)N);
    memset(w, 0, sizeof(float) * N);
    switch (c->kind) {
    case MOLT_ROUTER_SOFT:
        for (int i = 0; i < N; i++)
            sel[i] = 1, w[i] = p[i];
        return N;
    case MOLT_ROUTER_SWITCH: {
        int best = 0;
        for (int i = 1; i < N; i++)
            if (p[i] > p[best]) best = i;
        sel[best] = 1;
        w[best] = p[best];
        return 1;
    }
    case MOLT_ROUTER_TOPK:
    case MOLT_ROUTER_FACTOR:
        n = router_k(c);
        break;
    case MOLT_ROUTER_TOPP:
        rank_experts(p, N, r);
        n = topp_count(r, N, (double)c->top_p);
        break;
    case MOLT_ROUTER_DYNMOLE:
        /* threshold >= 1 disables the fallback explicitly: with the 1e-5 shift
         * H_q of a near-uniform p can exceed 1 by ~1e-5. */
        if (c->entropy_threshold < 1.0f && h > (double)c->entropy_threshold) {
            *soft = 1;
            for (int i = 0; i < N; i++)
                sel[i] = 1, w[i] = p[i];
            return N;
        }
        rank_experts(p, N, r);
        n = dynmole_count(r, N, (double)c->top_p, c->keep_top_k);
        break;
    default:
        return 0;
    }
    if (c->kind == MOLT_ROUTER_TOPK || c->kind == MOLT_ROUTER_FACTOR) rank_experts(p, N, r);
    for (int j = 0; j < n; j++)
        sel[r[j].i] = 1;
    if (c->kind == MOLT_ROUTER_TOPK) {
        double S = 0.0;
        for (int j = 0; j < n; j++)
            S += r[j].v;
        for (int j = 0; j < n; j++)
            w[r[j].i] = (float)(r[j].v / S);
    } else if (c->kind == MOLT_ROUTER_FACTOR) {
        for (int j = 0; j < n; j++)
            w[r[j].i] = (float)N / (float)n;
    } else {
        for (int j = 0; j < n; j++)
            w[r[j].i] = r[j].v;
    }
    return n;
}

/* Expert choice: expert e takes its top-C tokens by p[:, e] (lower token
 * index on ties); w = p on the taken pairs. r holds N*T scratch entries. */
static void route_expert_choice(const molt_router_cfg *c, const float *p, int T, float *w,
                                uint8_t *sel, ranked *r) {
    const int N = c->N, C = molt_router_capacity(c, T);
    memset(sel, 0, (size_t)T * N);
    memset(w, 0, sizeof(float) * (size_t)T * N);
#pragma omp parallel for schedule(static)
    for (int e = 0; e < N; e++) {
        ranked *re = r + (size_t)e * T;
        for (int t = 0; t < T; t++)
            re[t] = (ranked){p[(size_t)t * N + e], t};
        qsort(re, (size_t)T, sizeof *re, ranked_cmp);
        for (int j = 0; j < C; j++) {
            size_t at = (size_t)re[j].i * N + e;
            sel[at] = 1;
            w[at] = p[at];
        }
    }
}

size_t molt_router_scratch_bytes(int N, int T) {
    return (size_t)(T > 0 ? T : 1) * (size_t)(N > 0 ? N : 1) * sizeof(ranked);
}

long molt_router_forward_ws(const molt_router_cfg *c, const float *z, int T, float *p, float *w,
                            uint8_t *sel, float *ent, uint8_t *soft, void *scratch) {
    if (c->N < 1 || T < 0 || c->kind < 0 || c->kind >= MOLT_NROUTERS) {
        molt_error_at(MOLT_ERR_INPUT, __FILE__, __LINE__,
                      "router: bad arguments (kind %d, N %d, T %d)", c->kind, c->N, T);
        return -1;
    }
    if (T == 0) return 0;
    const int N = c->N;
    const double q = (double)c->entropy_q;
    ranked *r = scratch;
    long total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * N;
        softmax_row(z + o, p + o, N);
        double h = molt_tsallis_entropy(p + o, N, q);
        if (ent) ent[t] = (float)h;
        uint8_t fell_back = 0;
        if (c->kind != MOLT_ROUTER_EXPERT_CHOICE)
            total += route_token(c, p + o, w + o, sel + o, r + o, h, &fell_back);
        if (soft) soft[t] = fell_back;
    }
    if (c->kind == MOLT_ROUTER_EXPERT_CHOICE) {
        route_expert_choice(c, p, T, w, sel, r);
        total = (long)N * molt_router_capacity(c, T);
    }
    return total;
}

long molt_router_forward(const molt_router_cfg *c, const float *z, int T, float *p, float *w,
                         uint8_t *sel, float *ent, uint8_t *soft) {
    if (c->N < 1 || T <= 0) return molt_router_forward_ws(c, z, T, p, w, sel, ent, soft, NULL);
    void *r = molt_calloc_at(molt_router_scratch_bytes(c->N, T), 1, __FILE__, __LINE__);
    if (!r) return -1;
    long total = molt_router_forward_ws(c, z, T, p, w, sel, ent, soft, r);
    free(r);
    return total;
}

/* d(sum dw*w)/dp_i for token row i, before the softmax backward. */
static double dp_from_w(const molt_router_cfg *c, const uint8_t *sel, const float *dw, int i,
                        double S, double a) {
    if (!sel[i]) return 0.0;
    switch (c->kind) {
    case MOLT_ROUTER_TOPK:
        /* w_i = p_i / S over the kept set: dp_i = (dw_i - sum_j dw_j w_j) / S */
        return ((double)dw[i] - a) / S;
    case MOLT_ROUTER_FACTOR:
        return 0.0; /* constant N/k: the router trains through the PA loss */
    default:
        return dw[i]; /* w = p on the kept set */
    }
}

void molt_router_backward(const molt_router_cfg *c, const float *p, const float *w,
                          const uint8_t *sel, const float *dw, const float *dp, int T, float *dz) {
    const int N = c->N;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * N;
        const float *pt = p + o, *wt = w + o, *dwt = dw + o, *dpt = dp ? dp + o : NULL;
        const uint8_t *st = sel + o;
        double S = 0.0, a = 0.0;
        if (c->kind == MOLT_ROUTER_TOPK)
            for (int i = 0; i < N; i++)
                if (st[i]) S += pt[i], a += (double)dwt[i] * wt[i];
        /* softmax backward: dz = p * (g - sum_j p_j g_j), g = dp(w) + dp(aux) */
        double dot = 0.0;
        for (int i = 0; i < N; i++) {
            double g = dp_from_w(c, st, dwt, i, S, a) + (dpt ? dpt[i] : 0.0);
            dot += pt[i] * g;
        }
        for (int i = 0; i < N; i++) {
            double g = dp_from_w(c, st, dwt, i, S, a) + (dpt ? dpt[i] : 0.0);
            dz[o + i] = (float)(pt[i] * (g - dot));
        }
    }
}

void molt_router_stats_add(molt_router_stats *s, const molt_router_cfg *c, const float *z,
                           const float *p, const float *w, const uint8_t *sel, int T) {
    const int N = c->N;
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * N;
        for (int i = 0; i < N; i++) {
            s->count[i] += sel[o + i];
            s->psum[i] += p[o + i];
            s->wsum[i] += w[o + i];
            s->selections += sel[o + i];
        }
        double lse = logsumexp_row(z + o, N);
        s->ent_sum += molt_tsallis_entropy(p + o, N, (double)c->entropy_q);
        s->zsum += lse * lse;
    }
    s->tokens += T;
}

/* k of the balance loss: the fixed k of the hard top-k routers, 1 for switch,
 * and the mean number of experts per token of the variable-size routers. */
static double balance_k(const molt_router_cfg *c, const molt_router_stats *g) {
    switch (c->kind) {
    case MOLT_ROUTER_TOPK:
    case MOLT_ROUTER_FACTOR:
    case MOLT_ROUTER_EXPERT_CHOICE:
        return router_k(c);
    case MOLT_ROUTER_SWITCH:
        return 1.0;
    default:
        return g->selections / g->tokens;
    }
}

/* f_i of the balance loss: count_i / (tokens * k); 0 if nothing was selected. */
static double balance_f(const molt_router_cfg *c, const molt_router_stats *g, int i) {
    double k = balance_k(c, g);
    return k > 0.0 ? g->count[i] / (g->tokens * k) : 0.0;
}

/* DynMoLE's f_i = mean_t w_ti. It is treated as a CONSTANT (no gradient
 * through w), like the hard f_i of the Switch balance term: DESIGN §4 says
 * "soft, not counts" but is silent on detaching, and a constant f keeps the
 * gradient of both balance terms of the same form, coef * N * f_i / tokens. */
static double dynmole_f(const molt_router_stats *g, int i) {
    return g->wsum[i] / g->tokens;
}

molt_aux_values molt_aux_loss(const molt_aux_cfg *a, const molt_router_cfg *c,
                              const molt_router_stats *g) {
    molt_aux_values v = {0, 0, 0, 0};
    if (!(g->tokens > 0)) return v;
    const int N = c->N;
    const double Tg = g->tokens;
    if (a->balance) {
        double s = 0.0;
        for (int i = 0; i < N; i++)
            s += balance_f(c, g, i) * (g->psum[i] / Tg);
        v.balance = a->balance_coef * N * s;
    }
    if (a->dynmole) {
        double s = 0.0;
        for (int i = 0; i < N; i++)
            s += dynmole_f(g, i) * (g->psum[i] / Tg);
        v.dynmole = a->dynmole_entropy_coef * (g->ent_sum / Tg) + a->dynmole_balance_coef * N * s;
    }
    if (a->zloss) v.zloss = a->zloss_coef * g->zsum / Tg;
    if (a->pa) v.pa = (a->pa_coef * g->pa_sum + a->pa_balance_coef * g->pabal_sum) / Tg;
    return v;
}

void molt_aux_backward(const molt_aux_cfg *a, const molt_router_cfg *c, const molt_router_stats *g,
                       const float *z, const float *p, const float *w, const uint8_t *sel, int T,
                       float *dp, float *dz) {
    if (!(g->tokens > 0) || T <= 0) return;
    const int N = c->N;
    const double Tg = g->tokens, q = (double)c->entropy_q;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * N;
        /* the balance parts are linear in p with a constant f */
        for (int i = 0; i < N; i++) {
            double d = 0.0;
            if (a->balance) d += a->balance_coef * N * balance_f(c, g, i) / Tg;
            if (a->dynmole) d += a->dynmole_balance_coef * N * dynmole_f(g, i) / Tg;
            dp[o + i] += (float)d;
        }
        if (a->dynmole) tsallis_entropy_grad_add(p + o, N, q, a->dynmole_entropy_coef / Tg, dp + o);
        if (a->zloss) {
            /* d lse^2 / dz = 2 lse softmax(z) */
            double s = a->zloss_coef * 2.0 * logsumexp_row(z + o, N) / Tg;
            for (int i = 0; i < N; i++)
                dz[o + i] += (float)(s * p[o + i]);
        }
    }
}
