/* moe_block.c — MoE sites: route, group tokens by expert (plan), run each
 * expert on its contiguous block, combine with the router weights; and the
 * backward of all of it (DESIGN §2–§4). Placements:
 *   plugin     y = W x + sum_e w_e s B_e A_e xd      (per projection)
 *   fused_mlp  y = sum_e w_e down_e(silu(gate_e x) * up_e x), W + s B_e A_e
 *   ffn        the same with each expert's own gate/up/down weights
 * Only selected (token, expert) pairs compute. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/nn.h"
#include "molt/rng.h"
#include "nn/model_internal.h"

static const char *const proj_group[MOLT_NPROJ] = {"self_attn", "self_attn", "self_attn",
                                                   "self_attn", "mlp",       "mlp",
                                                   "mlp"};

int molt_moe_site_create(molt_moe_site **out, const molt_dims *d, int layer, int slot, int T_cap) {
    int rc = MOLT_OK;
    molt_moe_site *s = NULL;
    MOLT_ALLOC(s, 1);
    s->layer = layer, s->slot = slot, s->N = d->n_exp[layer];
    s->rc = d->router;
    s->rc.N = s->N;
    if (slot < MOLT_NPROJ) {
        molt_proj_shape(d, slot, &s->in, &s->out);
        snprintf(s->name, sizeof s->name, "model.layers.%d.%s.%s", layer, proj_group[slot],
                 molt_proj_names[slot]);
    } else {
        s->in = s->out = d->d;
        s->dff = d->placement == MOLT_PLACE_FFN ? d->expert_dff : d->dff;
        snprintf(s->name, sizeof s->name, "model.layers.%d.mlp", layer);
    }
    const long T = T_cap, N = s->N, cap = T * N;
    long wmax = s->in > s->out ? s->in : s->out;
    if (s->dff > wmax) wmax = s->dff;
    if (d->r > wmax) wmax = d->r;
    MOLT_ALLOC(s->z, T * N);
    MOLT_ALLOC(s->p, T * N);
    MOLT_ALLOC(s->w, T * N);
    MOLT_ALLOC(s->ent, T);
    MOLT_ALLOC(s->sel, T * N);
    MOLT_ALLOC(s->soft, T);
    MOLT_ALLOC(s->dw, T * N);
    MOLT_ALLOC(s->dp, T * N);
    MOLT_ALLOC(s->dz, T * N);
    MOLT_ALLOC(s->dzx, T * N);
    if (s->rc.kind == MOLT_ROUTER_SWITCH) {
        MOLT_ALLOC(s->xr, T * s->in);
        MOLT_ALLOC(s->jf, T * s->in);
    }
    MOLT_TRY(molt_plan_alloc(&s->plan, s->N, (int)cap));
    MOLT_ALLOC(s->Y, cap * s->out);
    if (slot < MOLT_NPROJ) {
        MOLT_ALLOC(s->u, cap * d->r);
    } else {
        MOLT_ALLOC(s->G, cap * s->dff);
        MOLT_ALLOC(s->U, cap * s->dff);
        MOLT_ALLOC(s->H, cap * s->dff);
        if (d->placement == MOLT_PLACE_FUSED_MLP) {
            MOLT_ALLOC(s->ug, cap * d->r);
            MOLT_ALLOC(s->uu, cap * d->r);
            MOLT_ALLOC(s->ud, cap * d->r);
        }
    }
    for (int i = 0; i < 6; i++) MOLT_ALLOC(s->scr[i], T * wmax);
    MOLT_ALLOC(s->lsum, 3 * N + 8);
    MOLT_ALLOC(s->gsum, 3 * N + 8);
    s->local = (molt_router_stats){s->lsum, s->lsum + N, s->lsum + 2 * N, 0, 0, 0, 0};
    s->global = (molt_router_stats){s->gsum, s->gsum + N, s->gsum + 2 * N, 0, 0, 0, 0};
    *out = s;
    s = NULL;
done:
    molt_moe_site_free(s);
    return rc;
}

void molt_moe_site_free(molt_moe_site *s) {
    if (!s) return;
    float *bufs[] = {s->z,  s->p,  s->w,  s->ent, s->xr, s->jf, s->u,  s->Y,  s->G, s->U,
                     s->H,  s->ug, s->uu, s->ud,  s->dw, s->dp, s->dz, s->dzx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    for (int i = 0; i < 6; i++) free(s->scr[i]);
    free(s->sel), free(s->soft), free(s->lsum), free(s->gsum);
    molt_plan_free(&s->plan);
    free(s);
}

/* ---------------- small helpers ---------------- */

/* LoRA-expert GEMMs are small (one expert's tokens times rank-r factors):
 * split over OpenBLAS's threads they cost more in synchronisation than they
 * gain (perf: 30-45% of samples waiting). Plugin experts run them on the
 * calling thread and give OpenBLAS its thread count back afterwards; FFN
 * experts keep all threads (measured: dynmole.ini +13% tok/s, mixlora.ini's
 * full-width expert GEMMs -2% if single-threaded). */
static int blas_small_begin(void) {
    int nt = openblas_get_num_threads();
    if (nt > 1) openblas_set_num_threads(1);
    return nt;
}

static void blas_small_end(int nt) {
    if (nt > 1) openblas_set_num_threads(nt);
}

static void gather(float *dst, const float *src, const int *tok, int n, int w) {
    for (int j = 0; j < n; j++) memcpy(dst + (long)j * w, src + (long)tok[j] * w, sizeof(float) * w);
}

static void scatter_add(float *dst, const float *src, const int *tok, int n, int w) {
    for (int j = 0; j < n; j++) {
        float *o = dst + (long)tok[j] * w;
        const float *i = src + (long)j * w;
        for (int c = 0; c < w; c++) o[c] += i[c];
    }
}

/* Combine: y[token_j] += scale * weight_j * Y_j over one expert's block. */
static void combine_add(float *y, const float *Y, const molt_plan *pl, int o, int n, int width,
                        float scale) {
    for (int j = 0; j < n; j++) {
        float c = scale * pl->weight[o + j];
        float *yr = y + (long)pl->token[o + j] * width;
        const float *Yr = Y + (long)j * width;
        for (int k = 0; k < width; k++) yr[k] += c * Yr[k];
    }
}

/* Backward of combine_add for expert e: dw[token_j, e] = scale * <gy_j, Y_j>,
 * then gy_j *= scale * weight_j (gy: the gathered output gradient rows). */
static void combine_backward(float *gy, float *dw, const float *Y, const molt_plan *pl, int o,
                             int n, int width, int e, int N, float scale) {
    for (int j = 0; j < n; j++) {
        float *gr = gy + (long)j * width;
        const float *Yr = Y + (long)j * width;
        double dot = 0;
        for (int k = 0; k < width; k++) dot += (double)gr[k] * Yr[k];
        dw[(long)pl->token[o + j] * N + e] = (float)(scale * dot);
        float c = scale * pl->weight[o + j];
        for (int k = 0; k < width; k++) gr[k] *= c;
    }
}

/* C[n,o] (+)= A[n,i] B[o,i]^T */
static void mm_nt(float *C, const float *A, const float *B, int n, int i, int o, float alpha,
                  float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o, i, alpha, A, i, B, i, beta, C, o);
}
/* C[n,i] (+)= A[n,o] B[o,i] */
static void mm_nn(float *C, const float *A, const float *B, int n, int o, int i, float alpha,
                  float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, i, o, alpha, A, o, B, i, beta, C, i);
}
/* C[o,i] += A[n,o]^T B[n,i] */
static void mm_tn_acc(float *C, const float *A, const float *B, int n, int o, int i, float alpha) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, i, n, alpha, A, o, B, i, 1.0f, C, i);
}

/* z = xr W_r^T (+ b); the switch router sees the input with multiplicative
 * jitter U[1-eps, 1+eps] in training, keyed by (step, global sample, layer, slot). */
static const float *router_forward(molt_model *m, molt_moe_site *s, const float *x, int Ntok,
                                   int training) {
    const molt_dims *d = &m->dims;
    const molt_acts *a = m->acts;
    const molt_layer_ptrs *w = &m->w.layers[s->layer];
    const float *xr = x;
    if (s->rc.kind == MOLT_ROUTER_SWITCH && training && d->jitter > 0) {
        for (int t = 0; t < Ntok; t += a->T) {
            molt_rng r;
            molt_rng_init(&r, d->seed, MOLT_RNG_JITTER, (uint32_t)a->last_step,
                          (uint32_t)(a->last_first + (uint64_t)(t / a->T)),
                          (uint32_t)(s->layer * 16 + s->slot));
            for (long j = 0; j < (long)a->T * s->in; j++) {
                long o = (long)t * s->in + j;
                s->jf[o] = 1.0f - d->jitter + 2.0f * d->jitter * molt_rng_uniform(&r);
                s->xr[o] = x[o] * s->jf[o];
            }
        }
        xr = s->xr;
    } else if (s->jf) { /* no jitter this time: the router saw x itself */
        for (long o = 0; o < (long)Ntok * s->in; o++) s->jf[o] = 1.0f;
        memcpy(s->xr, x, sizeof(float) * (size_t)Ntok * s->in);
    }
    linear_forward(s->z, xr, w->router[s->slot], Ntok, s->in, s->N, 0);
    if (s->slot == MOLT_SITE_MLP && w->router_b)
        for (int t = 0; t < Ntok; t++)
            for (int e = 0; e < s->N; e++) s->z[(long)t * s->N + e] += w->router_b[e];
    if (molt_router_forward(&s->rc, s->z, Ntok, s->p, s->w, s->sel, s->ent, s->soft) < 0) {
        /* reported by the router; the trainer ends the job after this forward */
        molt_trace_at(__FILE__, __LINE__, s->name);
        m->failed = MOLT_ERR_INTERNAL;
        memset(s->sel, 0, (size_t)Ntok * s->N);
    }
    molt_plan_build(&s->plan, s->sel, s->w, Ntok);
    molt_router_stats_add(&s->local, &s->rc, s->z, s->p, s->w, s->sel, Ntok);
    /* soft fallbacks, and tokens no expert took (expert_choice): they pass
     * through the residual only */
    for (int t = 0; t < Ntok; t++) {
        int any = 0;
        for (int e = 0; e < s->N && !any; e++) any = s->sel[(long)t * s->N + e];
        s->lsum[3 * s->N] += s->soft[t];
        s->lsum[3 * s->N + 5] += !any;
    }
    return xr;
}

/* dz from the combine weights' gradient (s->dw) and the auxiliary losses
 * (global statistics); then the router's weight and input gradients. */
static void router_backward(molt_model *m, molt_moe_site *s, float *dx, const float *x, int Ntok,
                            int n_sites) {
    const molt_dims *d = &m->dims;
    const molt_layer_ptrs *w = &m->w.layers[s->layer], *g = &m->g.layers[s->layer];
    const long TN = (long)Ntok * s->N;
    memset(s->dp, 0, sizeof(float) * TN);
    memset(s->dzx, 0, sizeof(float) * TN);
    if (d->aux.balance || d->aux.dynmole || d->aux.zloss) {
        if (s->global.tokens <= 0 && Ntok > 0) { /* a caller skipped molt_moe_stats_reduce */
            m->failed = MOLT_ERROR(MOLT_ERR_INTERNAL,
                                   "%s: auxiliary-loss gradient without global router statistics",
                                   s->name);
            return;
        }
        molt_aux_cfg a = d->aux;
        if (d->aux_mean) {
            a.balance_coef /= n_sites, a.dynmole_entropy_coef /= n_sites;
            a.dynmole_balance_coef /= n_sites, a.zloss_coef /= n_sites;
        }
        molt_aux_backward(&a, &s->rc, &s->global, s->z, s->p, s->w, s->sel, Ntok, s->dp,
                          s->dzx);
    }
    molt_router_backward(&s->rc, s->p, s->w, s->sel, s->dw, s->dp, Ntok, s->dz);
    for (long i = 0; i < TN; i++) s->dz[i] += s->dzx[i];
    const float *xr = s->jf ? s->xr : x;
    if (g->router[s->slot]) mm_tn_acc(g->router[s->slot], s->dz, xr, Ntok, s->N, s->in, 1.0f);
    if (s->slot == MOLT_SITE_MLP && g->router_b)
        for (int t = 0; t < Ntok; t++)
            for (int e = 0; e < s->N; e++) g->router_b[e] += s->dz[(long)t * s->N + e];
    if (s->jf) { /* through the jitter: dx += (dz W_r) * jf */
        float *dxr = s->scr[5];
        mm_nn(dxr, s->dz, w->router[s->slot], Ntok, s->N, s->in, 1.0f, 0.0f);
        for (long o = 0; o < (long)Ntok * s->in; o++) dx[o] += dxr[o] * s->jf[o];
    } else {
        mm_nn(dx, s->dz, w->router[s->slot], Ntok, s->N, s->in, 1.0f, 1.0f);
    }
}

static int count_sites(const molt_model *m) {
    int n = 0;
    for (int i = 0; i < m->dims.L * MOLT_SITE_SLOTS; i++) n += m->sites[i] != NULL;
    return n;
}

/* ---------------- plugin: LoRA experts on one projection ---------------- */

void molt_moe_plugin_forward(molt_model *m, molt_moe_site *s, float *y, const float *x,
                             const float *xd, int Ntok, int training) {
    const molt_dims *d = &m->dims;
    const molt_layer_ptrs *w = &m->w.layers[s->layer];
    const int p = s->slot, in = s->in, out = s->out, r = d->r;
    router_forward(m, s, x, Ntok, training);
    const molt_plan *pl = &s->plan;
    float *gx = s->scr[0];
    const int nt = blas_small_begin();
    for (int e = 0; e < s->N; e++) {
        int o = pl->offset[e], n = pl->offset[e + 1] - o;
        if (n == 0) continue;
        const float *A = w->eA[p] + (long)e * r * in, *B = w->eB[p] + (long)e * out * r;
        float *u = s->u + (long)o * r, *Y = s->Y + (long)o * out;
        gather(gx, xd, pl->token + o, n, in);
        mm_nt(u, gx, A, n, in, r, 1.0f, 0.0f);
        mm_nt(Y, u, B, n, r, out, 1.0f, 0.0f);
        combine_add(y, Y, pl, o, n, out, d->lora_scale);
    }
    blas_small_end(nt);
}

void molt_moe_plugin_backward(molt_model *m, molt_moe_site *s, float *dx, float *dxd,
                              const float *dy, const float *x, const float *xd, int Ntok) {
    const molt_dims *d = &m->dims;
    const molt_layer_ptrs *w = &m->w.layers[s->layer], *g = &m->g.layers[s->layer];
    const int p = s->slot, in = s->in, out = s->out, r = d->r, N = s->N;
    const molt_plan *pl = &s->plan;
    float *gx = s->scr[0], *gy = s->scr[1], *du = s->scr[2], *gdx = s->scr[3];
    memset(s->dw, 0, sizeof(float) * (size_t)Ntok * N);
    const int nt = blas_small_begin();
    for (int e = 0; e < N; e++) {
        int o = pl->offset[e], n = pl->offset[e + 1] - o;
        if (n == 0) continue;
        const float *A = w->eA[p] + (long)e * r * in, *B = w->eB[p] + (long)e * out * r;
        float *gA = g->eA[p] + (long)e * r * in, *gB = g->eB[p] + (long)e * out * r;
        const float *u = s->u + (long)o * r, *Y = s->Y + (long)o * out;
        gather(gy, dy, pl->token + o, n, out);
        combine_backward(gy, s->dw, Y, pl, o, n, out, e, N, d->lora_scale);
        mm_tn_acc(gB, gy, u, n, out, r, 1.0f);
        mm_nn(du, gy, B, n, out, r, 1.0f, 0.0f);
        gather(gx, xd, pl->token + o, n, in);
        mm_tn_acc(gA, du, gx, n, r, in, 1.0f);
        mm_nn(gdx, du, A, n, r, in, 1.0f, 0.0f);
        scatter_add(dxd, gdx, pl->token + o, n, in);
    }
    blas_small_end(nt);
    router_backward(m, s, dx, x, Ntok, count_sites(m));
}

/* ---------------- FFN experts (fused_mlp, ffn) ---------------- */

typedef struct {
    const float *W[3], *A[3], *B[3]; /* gate, up, down; A/B NULL for ffn experts */
    float *gW[3], *gA[3], *gB[3];
} expert_w;

static expert_w expert_weights(const molt_model *m, const molt_moe_site *s, int e) {
    const molt_dims *d = &m->dims;
    const molt_layer_ptrs *w = &m->w.layers[s->layer], *g = &m->g.layers[s->layer];
    const int pr[3] = {MOLT_PROJ_GATE, MOLT_PROJ_UP, MOLT_PROJ_DOWN};
    expert_w x;
    memset(&x, 0, sizeof x);
    for (int i = 0; i < 3; i++) {
        int p = pr[i], in = i < 2 ? d->d : s->dff, out = i < 2 ? s->dff : d->d;
        if (d->placement == MOLT_PLACE_FFN) {
            x.W[i] = w->ew[p] + (long)e * in * out;
            x.gW[i] = g->ew[p] ? g->ew[p] + (long)e * in * out : NULL;
        } else {
            x.W[i] = w->w[p], x.gW[i] = g->w[p];
            x.A[i] = w->eA[p] + (long)e * d->r * in;
            x.B[i] = w->eB[p] + (long)e * out * d->r;
            x.gA[i] = g->eA[p] + (long)e * d->r * in;
            x.gB[i] = g->eB[p] + (long)e * out * d->r;
        }
    }
    return x;
}

/* Y[n,out] = X W^T + s (X A^T) B^T; u keeps X A^T for backward. */
static void adapted_forward(float *Y, float *u, const float *X, const float *W, const float *A,
                            const float *B, int n, int in, int out, int r, float scale) {
    mm_nt(Y, X, W, n, in, out, 1.0f, 0.0f);
    if (!A) return;
    mm_nt(u, X, A, n, in, r, 1.0f, 0.0f);
    mm_nt(Y, u, B, n, r, out, scale, 1.0f);
}

/* dX[n,in] = dY W + LoRA path (writes); weight gradients accumulate. */
static void adapted_backward(float *dX, float *du, const float *dY, const float *X, const float *u,
                             const float *W, const float *A, const float *B, float *gW, float *gA,
                             float *gB, int n, int in, int out, int r, float scale) {
    mm_nn(dX, dY, W, n, out, in, 1.0f, 0.0f);
    if (gW) mm_tn_acc(gW, dY, X, n, out, in, 1.0f);
    if (!A) return;
    mm_tn_acc(gB, dY, u, n, out, r, scale);
    mm_nn(du, dY, B, n, out, r, scale, 0.0f);
    mm_tn_acc(gA, du, X, n, r, in, 1.0f);
    mm_nn(dX, du, A, n, r, in, 1.0f, 1.0f);
}

void molt_moe_ffn_forward(molt_model *m, molt_moe_site *s, float *out, const float *x, int Ntok,
                          int training) {
    const molt_dims *d = &m->dims;
    const int D = d->d, F = s->dff, r = d->r;
    router_forward(m, s, x, Ntok, training);
    const molt_plan *pl = &s->plan;
    float *gx = s->scr[0];
    memset(out, 0, sizeof(float) * (size_t)Ntok * D);
    for (int e = 0; e < s->N; e++) {
        int o = pl->offset[e], n = pl->offset[e + 1] - o;
        if (n == 0) continue;
        expert_w ew = expert_weights(m, s, e);
        float *G = s->G + (long)o * F, *U = s->U + (long)o * F, *H = s->H + (long)o * F;
        float *Y = s->Y + (long)o * D;
        gather(gx, x, pl->token + o, n, D);
        adapted_forward(G, s->ug ? s->ug + (long)o * r : NULL, gx, ew.W[0], ew.A[0], ew.B[0], n, D,
                        F, r, d->lora_scale);
        adapted_forward(U, s->uu ? s->uu + (long)o * r : NULL, gx, ew.W[1], ew.A[1], ew.B[1], n, D,
                        F, r, d->lora_scale);
        swiglu_forward(H, G, U, (long)n * F);
        adapted_forward(Y, s->ud ? s->ud + (long)o * r : NULL, H, ew.W[2], ew.A[2], ew.B[2], n, F,
                        D, r, d->lora_scale);
        combine_add(out, Y, pl, o, n, D, 1.0f);
    }
}

void molt_moe_ffn_backward(molt_model *m, molt_moe_site *s, float *dx, const float *dout,
                           const float *x, int Ntok) {
    const molt_dims *d = &m->dims;
    const int D = d->d, F = s->dff, r = d->r, N = s->N;
    const molt_plan *pl = &s->plan;
    float *gx = s->scr[0], *gy = s->scr[1], *dH = s->scr[2], *dG = s->scr[3], *dU = s->scr[4];
    float *du = s->scr[5], *gdx = s->scr[1]; /* gy is dead once dH is formed */
    memset(s->dw, 0, sizeof(float) * (size_t)Ntok * N);
    for (int e = 0; e < N; e++) {
        int o = pl->offset[e], n = pl->offset[e + 1] - o;
        if (n == 0) continue;
        expert_w ew = expert_weights(m, s, e);
        const float *G = s->G + (long)o * F, *U = s->U + (long)o * F, *H = s->H + (long)o * F;
        const float *Y = s->Y + (long)o * D;
        gather(gy, dout, pl->token + o, n, D);
        combine_backward(gy, s->dw, Y, pl, o, n, D, e, N, 1.0f);
        adapted_backward(dH, du, gy, H, s->ud ? s->ud + (long)o * r : NULL, ew.W[2], ew.A[2],
                         ew.B[2], ew.gW[2], ew.gA[2], ew.gB[2], n, F, D, r, d->lora_scale);
        swiglu_backward(dG, dU, dH, G, U, (long)n * F);
        gather(gx, x, pl->token + o, n, D);
        adapted_backward(gdx, du, dG, gx, s->ug ? s->ug + (long)o * r : NULL, ew.W[0], ew.A[0],
                         ew.B[0], ew.gW[0], ew.gA[0], ew.gB[0], n, D, F, r, d->lora_scale);
        scatter_add(dx, gdx, pl->token + o, n, D);
        adapted_backward(gdx, du, dU, gx, s->uu ? s->uu + (long)o * r : NULL, ew.W[1], ew.A[1],
                         ew.B[1], ew.gW[1], ew.gA[1], ew.gB[1], n, D, F, r, d->lora_scale);
        scatter_add(dx, gdx, pl->token + o, n, D);
    }
    router_backward(m, s, dx, x, Ntok, count_sites(m));
}
