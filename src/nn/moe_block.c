/* moe_block.c — MoE sites: route, plan, send each token to the rank holding
 * its expert, run every expert on its contiguous block, bring the results
 * back and combine them with the router weights; and the backward of all of
 * it (DESIGN §2–§5). Placements:
 *   plugin     y = W x + sum_e w_e s B_e A_e xd      (per projection)
 *   fused_mlp  y = sum_e w_e down_e(silu(gate_e x) * up_e x), W + s B_e A_e
 *   ffn        the same with each expert's own gate/up/down weights
 * Only selected (token, expert) pairs compute. Modes (dist.h for placement):
 *   local      one ep rank: every expert is here, nothing moves;
 *   alltoall   tokens travel to their expert's owner and back (a2a.h);
 *   replicate  the owners' experts are all-gathered, every rank computes its
 *              own tokens, expert gradients are reduce-scattered back.
 * A failure inside a site of a multi-rank job aborts the job at once: the
 * other ranks are waiting for this one inside an exchange. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "molt/coll.h"
#include "molt/err.h"
#include "molt/pa.h"
#include "molt/nn.h"
#include "molt/rng.h"
#include "nn/model_internal.h"

static const char *const proj_group[MOLT_NPROJ] = {"self_attn", "self_attn", "self_attn",
                                                   "self_attn", "mlp",       "mlp",
                                                   "mlp"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A site failed on this rank: report and, in a multi-rank job, end it now. */
static void site_fail(molt_model *m, const molt_moe_site *s, int rc) {
    molt_trace_at(__FILE__, __LINE__, s->name);
    if (m->lay.size > 1) {
        fprintf(stderr, "molt[rank %d]: error inside MoE site %s: aborting the job (exit %d)\n",
                m->lay.rank, s->name, rc);
        fflush(stderr);
        MPI_Abort(m->lay.world, rc);
    }
    m->failed = rc;
}

/* ---------------- creation and buffers ---------------- */

static void mode_buffers_free(molt_moe_site *s) {
    molt_a2a_free(&s->x);
    molt_plan_free(&s->plan);
    if (s->X != s->xs) free(s->X);
    if (s->Yo != s->ys) free(s->Yo);
    if (s->GE != s->gy) free(s->GE);
    if (s->DX != s->dxs) free(s->DX);
    s->X = s->Yo = s->GE = s->DX = NULL;
    float **bufs[] = {&s->u,  &s->G,  &s->U,       &s->H,
                      &s->ug, &s->uu, &s->ud, &s->rep_tmp, &s->rep_scr};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]), *bufs[i] = NULL;
    for (int i = 0; i < 6; i++) free(s->scr[i]), s->scr[i] = NULL;
    for (int i = 0; i < s->ntens; i++) {
        free(s->ten[i].w_all), free(s->ten[i].g_all);
        s->ten[i].w_all = s->ten[i].g_all = NULL;
    }
}

int molt_moe_site_set_mode(molt_model *m, molt_moe_site *s, int mode) {
    int rc = MOLT_OK;
    const molt_dims *d = &m->dims;
    const int ep = d->ep, N = s->N, T = s->T_cap;
    int *nl_of = NULL;
    if (ep == 1) mode = MOLT_SITE_LOCAL;
    mode_buffers_free(s);
    s->mode = mode;
    const int P = mode == MOLT_SITE_ALLTOALL ? ep : 1;
    const int C = P > 1 ? d->a2a_chunks : 1;
    s->cap_s = T * N;
    s->cap_r = P > 1 ? ep * T * s->nl : s->cap_s;
    s->blk = P * T;
    MOLT_ALLOC(nl_of, P);
    for (int k = 0; k < P; k++) nl_of[k] = P > 1 ? molt_experts_on(N, ep, k) : N;
    MOLT_TRY(molt_plan_alloc(&s->plan, N, s->cap_s, P, C));
    MOLT_TRY(molt_a2a_create(&s->x, m->lay.ep_comm, P, P > 1 ? d->ep_rank : 0, C, nl_of, s->cap_s,
                             s->cap_r, s->wmax));
    const long R = s->cap_r > 0 ? s->cap_r : 1;
    if (P > 1) {
        MOLT_ALLOC(s->X, R * s->in);
        MOLT_ALLOC(s->Yo, R * s->out);
        MOLT_ALLOC(s->GE, R * s->out);
        MOLT_ALLOC(s->DX, R * s->in);
    } else {
        s->X = s->xs, s->Yo = s->ys, s->GE = s->gy, s->DX = s->dxs;
    }
    if (s->slot < MOLT_NPROJ) {
        MOLT_ALLOC(s->u, R * d->r);
    } else {
        MOLT_ALLOC(s->G, R * s->dff);
        MOLT_ALLOC(s->U, R * s->dff);
        MOLT_ALLOC(s->H, R * s->dff);
        if (d->placement == MOLT_PLACE_FUSED_MLP) {
            MOLT_ALLOC(s->ug, R * d->r);
            MOLT_ALLOC(s->uu, R * d->r);
            MOLT_ALLOC(s->ud, R * d->r);
        }
    }
    for (int i = 0; i < 6; i++) MOLT_ALLOC(s->scr[i], (long)s->blk * s->wmax);
    if (mode == MOLT_SITE_REPLICATE) {
        long most = 1;
        size_t scr = 0;
        for (int i = 0; i < s->ntens; i++) {
            MOLT_ALLOC(s->ten[i].w_all, (long)N * s->ten[i].size);
            if (s->ten[i].trainable) MOLT_ALLOC(s->ten[i].g_all, (long)N * s->ten[i].size);
            if (s->ten[i].size > most) most = s->ten[i].size;
            size_t k = molt_reduce_scatter_scratch(s->rep_cnt, (size_t)s->ten[i].size, ep);
            if (k > scr) scr = k;
        }
        MOLT_ALLOC(s->rep_tmp, most * (s->nl > 0 ? s->nl : 1));
        if (scr) MOLT_ALLOC(s->rep_scr, scr); /* only past MPI's int counts */
    }
done:
    free(nl_of);
    return rc;
}

/* The FFN-type site's experts have their own weights (ffn, xattn). */
static int own_ffn_experts(const molt_dims *d) {
    return d->placement == MOLT_PLACE_FFN || d->placement == MOLT_PLACE_XATTN;
}

/* Expert tensors of the site, in molt_expert_tensor order. */
static void site_tensors(molt_model *m, molt_moe_site *s) {
    const molt_dims *d = &m->dims;
    const molt_layer_ptrs *w = &m->w.layers[s->layer], *g = &m->g.layers[s->layer];
    if (s->slot < MOLT_NPROJ) {
        const int p = s->slot;
        s->ntens = 2;
        s->ten[0] = (molt_expert_tensor){w->eA[p], g->eA[p], (long)d->r * s->in, NULL, NULL, 1};
        s->ten[1] = (molt_expert_tensor){w->eB[p], g->eB[p], (long)s->out * d->r, NULL, NULL, 1};
        return;
    }
    const int pr[3] = {MOLT_PROJ_GATE, MOLT_PROJ_UP, MOLT_PROJ_DOWN};
    for (int i = 0; i < 3; i++) {
        int p = pr[i], in = i < 2 ? d->d : s->dff, out = i < 2 ? s->dff : d->d;
        if (own_ffn_experts(d)) {
            s->ten[i] = (molt_expert_tensor){w->ew[p], g->ew[p], (long)in * out, NULL, NULL,
                                              d->experts_tr};
        } else {
            s->ten[2 * i] = (molt_expert_tensor){w->eA[p], g->eA[p], (long)d->r * in, NULL, NULL, 1};
            s->ten[2 * i + 1] =
                (molt_expert_tensor){w->eB[p], g->eB[p], (long)out * d->r, NULL, NULL, 1};
        }
    }
    s->ntens = own_ffn_experts(d) ? 3 : 6;
}

int molt_moe_site_create(molt_moe_site **out, molt_model *m, int layer, int slot, int T_cap) {
    int rc = MOLT_OK;
    const molt_dims *d = &m->dims;
    molt_moe_site *s = NULL;
    MOLT_ALLOC(s, 1);
    s->layer = layer, s->slot = slot, s->N = d->n_exp[layer];
    s->rc = d->router;
    s->rc.N = s->N;
    s->T_cap = T_cap;
    s->ep = d->ep;
    s->force_e = -1;
    s->nl = molt_experts_on(s->N, d->ep, d->ep_rank);
    if (slot < MOLT_NPROJ) {
        molt_proj_shape(d, slot, &s->in, &s->out);
        snprintf(s->name, sizeof s->name, "model.layers.%d.%s.%s", layer, proj_group[slot],
                 molt_proj_names[slot]);
    } else {
        s->in = s->out = d->d;
        s->dff = own_ffn_experts(d) ? d->expert_dff : d->dff;
        if (layer == d->L) snprintf(s->name, sizeof s->name, "model.mm_moe");
        else snprintf(s->name, sizeof s->name, "model.layers.%d.mlp", layer);
    }
    site_tensors(m, s);
    const long T = T_cap, N = s->N, cap = T * N;
    long wmax = s->in > s->out ? s->in : s->out;
    if (s->dff > wmax) wmax = s->dff;
    if (d->r > wmax) wmax = d->r;
    s->wmax = (int)wmax;
    MOLT_ALLOC(s->z, T * N);
    MOLT_ALLOC(s->p, T * N);
    MOLT_ALLOC(s->w, T * N);
    MOLT_ALLOC(s->ent, T);
    MOLT_ALLOC(s->sel, T * N);
    MOLT_ALLOC(s->keep, T * N);
    MOLT_ALLOC(s->soft, T);
    s->rsort = molt_calloc_at(molt_router_scratch_bytes(s->N, T_cap), 1, __FILE__, __LINE__);
    if (!s->rsort) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: router scratch", s->name);
    MOLT_ALLOC(s->dw, T * N);
    MOLT_ALLOC(s->dp, T * N);
    MOLT_ALLOC(s->dz, T * N);
    MOLT_ALLOC(s->dzx, T * N);
    if (s->rc.kind == MOLT_ROUTER_SWITCH) {
        MOLT_ALLOC(s->xr, T * s->in);
        MOLT_ALLOC(s->jf, T * s->in);
    }
    MOLT_ALLOC(s->xs, cap * s->in);
    MOLT_ALLOC(s->ys, cap * s->out);
    MOLT_ALLOC(s->gy, cap * s->out);
    MOLT_ALLOC(s->dxs, cap * s->in);
    const int ep = d->ep > 0 ? d->ep : 1;
    MOLT_ALLOC(s->rep_cnt, ep);
    MOLT_ALLOC(s->rep_first, ep);
    for (int k = 0; k < ep; k++) s->rep_cnt[k] = molt_experts_on(s->N, ep, k);
    for (int k = 1; k < ep; k++) s->rep_first[k] = s->rep_first[k - 1] + s->rep_cnt[k - 1];
    if (d->capacity_factor > 0) {
        MOLT_ALLOC(s->cap_cnt, m->lay.size);
        MOLT_ALLOC(s->cap_dsp, m->lay.size);
        s->cap_loc = molt_calloc_at((size_t)cap, 16, __FILE__, __LINE__);
        s->cap_all = molt_calloc_at((size_t)cap * m->lay.size, 16, __FILE__, __LINE__);
        if (!s->cap_loc || !s->cap_all) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: capacity buffers", s->name);
    }
    MOLT_ALLOC(s->lsum, 3 * N + MOLT_SITE_NSTATS);
    MOLT_ALLOC(s->gsum, 3 * N + MOLT_SITE_NSTATS);
    s->local = (molt_router_stats){s->lsum, s->lsum + N, s->lsum + 2 * N, 0, 0, 0, 0, 0, 0};
    s->global = (molt_router_stats){s->gsum, s->gsum + N, s->gsum + 2 * N, 0, 0, 0, 0, 0, 0};
    if (d->aux.pa) { /* every expert on every token: the dense FFN's cost, once */
        MOLT_ALLOC(s->ell, (long)T_cap * N);
        const int wmax_ff = d->teacher && d->dff > s->dff ? d->dff : s->dff; /* teacher: d_ff */
        MOLT_ALLOC(s->paG, (long)T_cap * wmax_ff);
        MOLT_ALLOC(s->paU, (long)T_cap * wmax_ff);
        MOLT_ALLOC(s->paY, (long)N * T_cap * s->out); /* every expert's output */
        MOLT_ALLOC(s->paT, (long)T_cap * s->out);
        MOLT_ALLOC(s->pa_scr, 2 * N);
    }
    MOLT_TRY(molt_moe_site_set_mode(m, s, d->dispatch == MOLT_DISPATCH_REPLICATE
                                              ? MOLT_SITE_REPLICATE
                                              : MOLT_SITE_ALLTOALL));
#ifdef MOLT_FAULT_INJECTION
    { /* test builds: MOLT_FAULT_MOE_RANK=r [MOLT_FAULT_MOE_LAYER=l] fails rank r in the
         first MoE site of layer l (default 0): in its first training forward, or with
         MOLT_FAULT_MOE_BWD_STEP=n in the backward of step n (1-based) */
        const char *fr = getenv("MOLT_FAULT_MOE_RANK"), *fl = getenv("MOLT_FAULT_MOE_LAYER");
        const char *fb = getenv("MOLT_FAULT_MOE_BWD_STEP");
        int first = 1;
        for (int k = 0; k < slot; k++) first &= !m->w.layers[layer].router[k];
        const int here = fr && atoi(fr) == m->lay.rank && layer == (fl ? atoi(fl) : 0) && first;
        s->fault = here && !fb;
        s->fault_bwd = here && fb ? atol(fb) : 0;
        /* MOLT_FAULT_ROUTE_ONE=l:e adds 30 to expert e's logit at every site of
         * layer l: a router that sends every token to one expert */
        const char *fo = getenv("MOLT_FAULT_ROUTE_ONE");
        int fl2 = -1, fe = -1;
        if (fo && sscanf(fo, "%d:%d", &fl2, &fe) == 2 && fl2 == layer && fe >= 0 && fe < s->N)
            s->force_e = fe;
    }
#endif
    *out = s;
    s = NULL;
done:
    molt_moe_site_free(s);
    return rc;
}

void molt_moe_site_free(molt_moe_site *s) {
    if (!s) return;
    mode_buffers_free(s);
    float *bufs[] = {s->z, s->p,  s->w,  s->ent, s->xr, s->jf,  s->dw,
                     s->dp, s->dz, s->dzx, s->xs, s->ys, s->gy, s->dxs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s->sel), free(s->soft), free(s->keep), free(s->rsort), free(s->lsum), free(s->gsum);
    free(s->ell), free(s->paG), free(s->paU), free(s->paY), free(s->paT), free(s->pa_scr);
    free(s->rep_cnt), free(s->rep_first);
    free(s->cap_loc), free(s->cap_all), free(s->cap_cnt), free(s->cap_dsp);
    free(s);
}

/* Expert tensor i of expert slot l as the compute sees it: this rank's l-th
 * expert (local, alltoall) or expert l of all N (replicate, gathered
 * rank-major: expert e at rep_first[e mod ep] + e div ep). */
static float *ten_w(const molt_moe_site *s, int i, int l) {
    const molt_expert_tensor *t = &s->ten[i];
    if (s->mode != MOLT_SITE_REPLICATE) return t->w + (long)l * t->size;
    return t->w_all + (long)(s->rep_first[l % s->ep] + l / s->ep) * t->size;
}

static float *ten_g(const molt_moe_site *s, int i, int l) {
    const molt_expert_tensor *t = &s->ten[i];
    if (!t->trainable) return NULL;
    if (s->mode != MOLT_SITE_REPLICATE) return t->g + (long)l * t->size;
    return t->g_all + (long)(s->rep_first[l % s->ep] + l / s->ep) * t->size;
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

/* Combine: y[token_j] += scale * weight_j * Y_j over every plan entry. */
static void combine_add(float *y, const float *Y, const molt_plan *pl, int width, float scale) {
    for (int j = 0; j < pl->total; j++) {
        float c = scale * pl->weight[j];
        float *yr = y + (long)pl->token[j] * width;
        const float *Yr = Y + (long)j * width;
        for (int k = 0; k < width; k++) yr[k] += c * Yr[k];
    }
}

/* Backward of combine_add: dw[token_j, expert_j] = scale * <gy_j, Y_j>, then
 * gy_j *= scale * weight_j (gy: the gathered output gradient rows). */
static void combine_backward(float *gy, float *dw, const float *Y, const molt_plan *pl, int width,
                             int N, float scale) {
    for (int j = 0; j < pl->total; j++) {
        float *gr = gy + (long)j * width;
        const float *Yr = Y + (long)j * width;
        double dot = 0;
        for (int k = 0; k < width; k++) dot += (double)gr[k] * Yr[k];
        dw[(long)pl->token[j] * N + pl->expert[j]] = (float)(scale * dot);
        float c = scale * pl->weight[j];
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

/* ---------------- capacity ---------------- */

typedef struct {
    float w;
    int32_t e;
    int64_t token; /* global token index: global sample * T + position */
} cap_entry;

static int cap_cmp(const void *pa, const void *pb) {
    const cap_entry *a = pa, *b = pb;
    if (a->e != b->e) return a->e < b->e ? -1 : 1;
    if (a->w != b->w) return a->w > b->w ? -1 : 1;
    return a->token < b->token ? -1 : a->token > b->token;
}

/* moe.capacity_factor > 0: expert e computes at most
 *   C = ceil(capacity_factor * S / N)
 * of the S (token, expert) selections of the whole global forward, keeping
 * the highest router weights (ties: lower global token index). Every rank
 * gathers all selections (weight, expert, global token) over the world and
 * makes the same decision, so the cut does not depend on the layout; this
 * costs O(global selections) per site and forward. keep = sel minus the cut;
 * cut pairs are counted in the site's statistics. */
static int capacity_cut(molt_model *m, molt_moe_site *s, int Ntok) {
    int rc = MOLT_OK;
    const int N = s->N, W = m->lay.size;
    const int64_t base = (int64_t)m->acts->last_first * m->acts->T;
    cap_entry *loc = s->cap_loc, *all = s->cap_all;
    int n = 0;
    for (int t = 0; t < Ntok; t++)
        for (int e = 0; e < N; e++)
            if (s->sel[(long)t * N + e]) loc[n++] = (cap_entry){s->w[(long)t * N + e], e, base + t};
    double t0 = now_s();
    MPI_Datatype et = MPI_DATATYPE_NULL; /* counts in entries, not bytes */
    if (W > 1) {
        MOLT_MPI(MPI_Allgather(&n, 1, MPI_INT, s->cap_cnt, 1, MPI_INT, m->lay.world));
    } else {
        s->cap_cnt[0] = n;
    }
    long S = 0;
    for (int r = 0; r < W; r++) {
        if (S > INT_MAX)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: %ld capacity selections exceed MPI's int counts",
                      s->name, S);
        s->cap_dsp[r] = (int)S;
        S += s->cap_cnt[r];
    }
    if (W > 1) {
        MOLT_MPI(MPI_Type_contiguous((int)sizeof(cap_entry), MPI_BYTE, &et));
        MOLT_MPI(MPI_Type_commit(&et));
        MOLT_MPI(MPI_Allgatherv(loc, n, et, all, s->cap_cnt, s->cap_dsp, et, m->lay.world));
    } else {
        memcpy(all, loc, (size_t)n * sizeof(cap_entry));
    }
    m->times.comm += now_s() - t0;
    qsort(all, (size_t)S, sizeof(cap_entry), cap_cmp);
    const long C = (long)ceil(m->dims.capacity_factor * (double)S / N - 1e-9);
    memcpy(s->keep, s->sel, (size_t)Ntok * N);
    long cut = 0;
    for (long i = 0, run = 0; i < S; i++) {
        run = (i > 0 && all[i].e == all[i - 1].e) ? run + 1 : 0;
        int64_t t = all[i].token - base;
        if (run >= C && t >= 0 && t < Ntok) {
            s->keep[t * N + all[i].e] = 0;
            cut++;
        }
    }
    s->lsum[3 * N + 6] += (double)cut;
done:
    if (et != MPI_DATATYPE_NULL) MPI_Type_free(&et);
    return rc;
}

/* FactorLLM's PA loss (include/molt/pa.h): every expert E_e on every token
 * (ep = 1: all experts are local; together they cost one dense FFN), the
 * teacher T = the stored frozen dense FFN when the experts train
 * (factor.train = router,experts), else sum_e E_e (exactly the dense FFN the
 * frozen experts were sliced from), ell[t,e] = mean_d (E_e(x_t) - T(x_t) k/N)^2. Adds this
 * micro-batch's KL and balance sums to the local stats; the gradient comes
 * in router_backward with the global token count. */
static void pa_forward(molt_model *m, molt_moe_site *s, const float *x, int Ntok) {
    const int D = s->out, F = s->dff, N = s->N;
    const int k = s->rc.top_k < 1 ? 1 : s->rc.top_k > N ? N : s->rc.top_k;
    const long TD = (long)Ntok * D;
    double t0 = now_s();
    memset(s->paT, 0, sizeof(float) * (size_t)TD);
    for (int e = 0; e < N; e++) {
        float *Y = s->paY + (long)e * s->T_cap * D;
        mm_nt(s->paG, x, ten_w(s, 0, e), Ntok, D, F, 1.0f, 0.0f);
        mm_nt(s->paU, x, ten_w(s, 1, e), Ntok, D, F, 1.0f, 0.0f);
        swiglu_forward(s->paG, s->paG, s->paU, (long)Ntok * F);
        mm_nt(Y, s->paG, ten_w(s, 2, e), Ntok, F, D, 1.0f, 0.0f);
        for (long i = 0; i < TD; i++) s->paT[i] += Y[i];
    }
    const float *const *tw = (const float *const *)m->w.layers[s->layer].teacher;
    if (tw[0]) { /* the stored dense FFN (the experts train): T = down(silu(gate x) * up x) */
        const int DF = m->dims.dff;
        mm_nt(s->paG, x, tw[0], Ntok, D, DF, 1.0f, 0.0f);
        mm_nt(s->paU, x, tw[1], Ntok, D, DF, 1.0f, 0.0f);
        swiglu_forward(s->paG, s->paG, s->paU, (long)Ntok * DF);
        mm_nt(s->paT, s->paG, tw[2], Ntok, DF, D, 1.0f, 0.0f);
    }
    const float c = (float)k / (float)N;
    for (int e = 0; e < N; e++) {
        const float *Y = s->paY + (long)e * s->T_cap * D;
        for (int t = 0; t < Ntok; t++) {
            double acc = 0;
            for (int j = 0; j < D; j++) {
                double r = (double)Y[(long)t * D + j] - (double)c * s->paT[(long)t * D + j];
                acc += r * r;
            }
            s->ell[(long)t * N + e] = (float)(acc / D);
        }
    }
    /* the sums only (unit coefficients, no normaliser); dzx is scratch here */
    molt_pa_cfg pc = {1.0, 1.0, k};
    molt_pa_values v = molt_pa_loss(&pc, s->z, s->ell, s->sel, Ntok, N, 1.0, s->pa_scr, s->dzx);
    s->local.pa_sum += v.pa, s->local.pabal_sum += v.balance;
    m->times.expert += now_s() - t0;
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
    if (s->force_e >= 0)
        for (int t = 0; t < Ntok; t++) s->z[(long)t * s->N + s->force_e] += 30.0f;
    if (molt_router_forward_ws(&s->rc, s->z, Ntok, s->p, s->w, s->sel, s->ent, s->soft,
                               s->rsort) < 0) {
        /* reported by the router; the trainer ends the job after this forward */
        molt_trace_at(__FILE__, __LINE__, s->name);
        m->failed = MOLT_ERR_INTERNAL;
        memset(s->sel, 0, (size_t)Ntok * s->N);
    }
    molt_router_stats_add(&s->local, &s->rc, s->z, s->p, s->w, s->sel, Ntok);
    if (training && d->aux.pa && s->ell) {
        /* factor.pa_input = teacher_prev: layer l > 0 measures its experts on
         * layer l-1's teacher output (that layer's PA pass ran just before) */
        const molt_moe_site *prev =
            d->pa_teacher_prev && s->layer > 0
                ? m->sites[(s->layer - 1) * MOLT_SITE_SLOTS + MOLT_SITE_MLP]
                : NULL;
        pa_forward(m, s, prev && prev->paT ? prev->paT : x, Ntok);
    }
    const uint8_t *planned = s->sel;
    if (training && d->capacity_factor > 0) {
        int rc = capacity_cut(m, s, Ntok);
        if (rc) site_fail(m, s, rc);
        planned = s->keep;
    }
    molt_plan_build(&s->plan, planned, s->w, Ntok);
    /* soft fallbacks, and tokens no expert computes (expert_choice, capacity):
     * they pass through the residual only */
    for (int t = 0; t < Ntok; t++) {
        int any = 0;
        for (int e = 0; e < s->N && !any; e++) any = planned[(long)t * s->N + e];
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
    if (d->aux.balance || d->aux.dynmole || d->aux.zloss || d->aux.pa) {
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
    if (d->aux.pa && s->ell && s->global.tokens > 0) { /* FactorLLM: on z directly */
        const int k = s->rc.top_k < 1 ? 1 : s->rc.top_k > s->N ? s->N : s->rc.top_k;
        const double div = d->aux_mean ? n_sites : 1;
        molt_pa_cfg pc = {d->aux.pa_coef / div, d->aux.pa_balance_coef / div, k};
        molt_pa_loss(&pc, s->z, s->ell, s->sel, Ntok, s->N, s->global.tokens, s->pa_scr, s->dzx);
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
    for (int i = 0; i < molt_site_slots(m); i++) n += m->sites[i] != NULL;
    return n;
}

/* ---------------- replicate: gather experts, reduce-scatter their gradients ---------------- */

static int replicate_gather(molt_model *m, molt_moe_site *s) {
    int rc = MOLT_OK;
    double t0 = now_s();
    for (int i = 0; i < s->ntens; i++) {
        MOLT_TRY(molt_allgather_units_f32(s->ten[i].w, s->ten[i].w_all, s->rep_cnt,
                                          (size_t)s->ten[i].size, m->lay.ep_comm));
        if (s->ten[i].g_all)
            memset(s->ten[i].g_all, 0, sizeof(float) * (size_t)s->N * s->ten[i].size);
    }
done:
    m->times.comm += now_s() - t0;
    return rc;
}

/* Every rank computed gradients for all N experts from its own tokens: sum
 * them into each expert's owner (the edp all-reduce then completes the sum). */
static int replicate_reduce(molt_model *m, molt_moe_site *s) {
    int rc = MOLT_OK;
    double t0 = now_s();
    for (int i = 0; i < s->ntens; i++) {
        const molt_expert_tensor *t = &s->ten[i];
        if (!t->trainable) continue;
        MOLT_TRY(molt_reduce_scatter_units_f32(t->g_all, s->rep_tmp, s->rep_cnt, (size_t)t->size,
                                               s->rep_scr, m->lay.ep_comm));
        for (long j = 0; j < s->nl * t->size; j++) t->g[j] += s->rep_tmp[j];
        memset(t->g_all, 0, sizeof(float) * (size_t)s->N * t->size);
    }
done:
    m->times.comm += now_s() - t0;
    return rc;
}

/* ---------------- the exchange around the experts ---------------- */

typedef struct {
    molt_model *m;
    molt_moe_site *s;
} site_ctx;

/* Plan, counts and (replicate) weights for this forward. */
static int dispatch_begin(molt_model *m, molt_moe_site *s) {
    int rc = MOLT_OK;
    double t0 = now_s();
    MOLT_TRY(molt_a2a_set_counts(&s->x, s->plan.scnt));
    m->times.comm += now_s() - t0;
    if (s->mode == MOLT_SITE_REPLICATE) MOLT_TRY(replicate_gather(m, s));
done:
    return rc;
}

/* send (plan order, width win) -> experts -> ret (plan order, width wout). */
static int exchange(molt_model *m, molt_moe_site *s, const float *send, int win, float *X, float *Y,
                    int wout, float *ret, molt_a2a_compute fn) {
    site_ctx ctx = {m, s};
    double t0 = now_s(), e0 = m->times.expert;
    int rc = molt_a2a_run(&s->x, send, win, X, Y, wout, ret, s->plan.eoff, fn, &ctx);
    m->times.comm += (now_s() - t0) - (m->times.expert - e0);
    return rc;
}

/* Experts this rank computes in the exchange: its own (alltoall) or all. */
static int computed_experts(const molt_moe_site *s) {
    return s->mode == MOLT_SITE_ALLTOALL ? s->nl : s->N;
}

/* One site's forward: route x; send the planned rows of xe (the experts'
 * input: x, or x after LoRA dropout) to their owners; `fn` computes; the
 * results come back and y[token] += scale * weight * result. */
static void site_forward(molt_model *m, molt_moe_site *s, float *y, const float *x,
                         const float *xe, int Ntok, int training, molt_a2a_compute fn,
                         float scale) {
    int rc = MOLT_OK;
    double t0 = now_s();
    if (s->fault && training) {
        s->fault = 0;
        site_fail(m, s, MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: injected fault (MOLT_FAULT_MOE_RANK=%d)",
                                   s->name, m->lay.rank));
    }
    router_forward(m, s, x, Ntok, training);
    m->times.route += now_s() - t0;
    if ((rc = dispatch_begin(m, s))) goto done;
    t0 = now_s();
    gather(s->xs, xe, s->plan.token, s->plan.total, s->in);
    m->times.combine += now_s() - t0;
    if ((rc = exchange(m, s, s->xs, s->in, s->X, s->Yo, s->out, s->ys, fn))) goto done;
    t0 = now_s();
    combine_add(y, s->ys, &s->plan, s->out, scale);
    m->times.combine += now_s() - t0;
done:
    if (rc) site_fail(m, s, rc);
}

/* Its backward: dw and the weighted output gradients at the sender, `fn`
 * at the owners, input gradients scattered into dxe, then the router's
 * (which ACCUMULATES into dx). */
static void site_backward(molt_model *m, molt_moe_site *s, float *dx, float *dxe, const float *dy,
                          const float *x, int Ntok, molt_a2a_compute fn, float scale) {
    int rc = MOLT_OK;
    double t0 = now_s();
    if (s->fault_bwd && m->acts->last_step + 1 == s->fault_bwd) {
        /* reported and recorded; the backward goes on through its exchanges so
         * that every rank reaches the trainer's check of this step */
        s->fault_bwd = 0;
        m->failed = MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: injected backward fault in step %ld "
                               "(MOLT_FAULT_MOE_BWD_STEP)", s->name, m->acts->last_step + 1);
    }
    memset(s->dw, 0, sizeof(float) * (size_t)Ntok * s->N);
    gather(s->gy, dy, s->plan.token, s->plan.total, s->out);
    combine_backward(s->gy, s->dw, s->ys, &s->plan, s->out, s->N, scale);
    m->times.combine += now_s() - t0;
    if ((rc = exchange(m, s, s->gy, s->out, s->GE, s->DX, s->in, s->dxs, fn))) goto done;
    t0 = now_s();
    scatter_add(dxe, s->dxs, s->plan.token, s->plan.total, s->in);
    m->times.combine += now_s() - t0;
    if (s->mode == MOLT_SITE_REPLICATE && (rc = replicate_reduce(m, s))) goto done;
    t0 = now_s();
    router_backward(m, s, dx, x, Ntok, count_sites(m));
    m->times.route += now_s() - t0;
done:
    if (rc) site_fail(m, s, rc);
}

/* ---------------- plugin: LoRA experts on one projection ---------------- */

/* Y = B_l (A_l X) per local expert block (the LoRA scale and the router
 * weight are applied by the sender's combine); u keeps A_l X. */
static int plugin_forward_chunk(void *vctx, int chunk, const float *X, float *Y, const int *eoff) {
    site_ctx *c = vctx;
    molt_model *m = c->m;
    molt_moe_site *s = c->s;
    const int in = s->in, out = s->out, r = m->dims.r;
    (void)chunk;
    double t0 = now_s();
    const int nt = blas_small_begin();
    for (int l = 0; l < computed_experts(s); l++) {
        int o = eoff[l], n = eoff[l + 1] - o;
        if (n == 0) continue;
        float *u = s->u + (long)o * r;
        mm_nt(u, X + (long)o * in, ten_w(s, 0, l), n, in, r, 1.0f, 0.0f);
        mm_nt(Y + (long)o * out, u, ten_w(s, 1, l), n, r, out, 1.0f, 0.0f);
        molt_a2a_progress(&s->x);
    }
    blas_small_end(nt);
    m->times.expert += now_s() - t0;
    return MOLT_OK;
}

/* GE: output gradients (already scaled); DX = dL/dX; weight gradients. */
static int plugin_backward_chunk(void *vctx, int chunk, const float *GE, float *DX,
                                 const int *eoff) {
    site_ctx *c = vctx;
    molt_model *m = c->m;
    molt_moe_site *s = c->s;
    const int in = s->in, out = s->out, r = m->dims.r;
    (void)chunk;
    double t0 = now_s();
    float *du = s->scr[2];
    const int nt = blas_small_begin();
    for (int l = 0; l < computed_experts(s); l++) {
        int o = eoff[l], n = eoff[l + 1] - o;
        if (n == 0) continue;
        const float *A = ten_w(s, 0, l), *B = ten_w(s, 1, l), *g = GE + (long)o * out;
        const float *u = s->u + (long)o * r, *x = s->X + (long)o * in;
        mm_tn_acc(ten_g(s, 1, l), g, u, n, out, r, 1.0f);
        mm_nn(du, g, B, n, out, r, 1.0f, 0.0f);
        mm_tn_acc(ten_g(s, 0, l), du, x, n, r, in, 1.0f);
        mm_nn(DX + (long)o * in, du, A, n, r, in, 1.0f, 0.0f);
        molt_a2a_progress(&s->x);
    }
    blas_small_end(nt);
    m->times.expert += now_s() - t0;
    return MOLT_OK;
}

void molt_moe_plugin_forward(molt_model *m, molt_moe_site *s, float *y, const float *x,
                             const float *xd, int Ntok, int training) {
    site_forward(m, s, y, x, xd, Ntok, training, plugin_forward_chunk, m->dims.lora_scale);
}

void molt_moe_plugin_backward(molt_model *m, molt_moe_site *s, float *dx, float *dxd,
                              const float *dy, const float *x, const float *xd, int Ntok) {
    (void)xd; /* the owners kept the rows they computed on */
    site_backward(m, s, dx, dxd, dy, x, Ntok, plugin_backward_chunk, m->dims.lora_scale);
}

/* ---------------- FFN experts (fused_mlp, ffn) ---------------- */

typedef struct {
    const float *W[3], *A[3], *B[3]; /* gate, up, down; A/B NULL for ffn experts */
    float *gW[3], *gA[3], *gB[3];
} expert_w;

/* Expert slot l's weights: ffn experts' own; fused_mlp: the shared base
 * projections with expert l's LoRA. */
static expert_w expert_weights(const molt_model *m, const molt_moe_site *s, int l) {
    const molt_dims *d = &m->dims;
    const molt_layer_ptrs *w = &m->w.layers[s->layer], *g = &m->g.layers[s->layer];
    const int pr[3] = {MOLT_PROJ_GATE, MOLT_PROJ_UP, MOLT_PROJ_DOWN};
    expert_w x;
    memset(&x, 0, sizeof x);
    for (int i = 0; i < 3; i++) {
        if (own_ffn_experts(d)) {
            x.W[i] = ten_w(s, i, l), x.gW[i] = ten_g(s, i, l);
        } else {
            x.W[i] = w->w[pr[i]], x.gW[i] = g->w[pr[i]];
            x.A[i] = ten_w(s, 2 * i, l), x.B[i] = ten_w(s, 2 * i + 1, l);
            x.gA[i] = ten_g(s, 2 * i, l), x.gB[i] = ten_g(s, 2 * i + 1, l);
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

static float *rows_or_null(float *base, long o, int w) {
    return base ? base + o * w : NULL;
}

static int ffn_forward_chunk(void *vctx, int chunk, const float *X, float *Y, const int *eoff) {
    site_ctx *c = vctx;
    molt_model *m = c->m;
    molt_moe_site *s = c->s;
    const molt_dims *d = &m->dims;
    const int D = d->d, F = s->dff, r = d->r;
    (void)chunk;
    double t0 = now_s();
    for (int l = 0; l < computed_experts(s); l++) {
        long o = eoff[l];
        int n = eoff[l + 1] - (int)o;
        if (n == 0) continue;
        expert_w ew = expert_weights(m, s, l);
        float *G = s->G + o * F, *U = s->U + o * F, *H = s->H + o * F;
        const float *x = X + o * D;
        adapted_forward(G, rows_or_null(s->ug, o, r), x, ew.W[0], ew.A[0], ew.B[0], n, D, F, r,
                        d->lora_scale);
        adapted_forward(U, rows_or_null(s->uu, o, r), x, ew.W[1], ew.A[1], ew.B[1], n, D, F, r,
                        d->lora_scale);
        swiglu_forward(H, G, U, (long)n * F);
        adapted_forward(Y + o * D, rows_or_null(s->ud, o, r), H, ew.W[2], ew.A[2], ew.B[2], n, F,
                        D, r, d->lora_scale);
        molt_a2a_progress(&s->x);
    }
    m->times.expert += now_s() - t0;
    return MOLT_OK;
}

static int ffn_backward_chunk(void *vctx, int chunk, const float *GE, float *DX, const int *eoff) {
    site_ctx *c = vctx;
    molt_model *m = c->m;
    molt_moe_site *s = c->s;
    const molt_dims *d = &m->dims;
    const int D = d->d, F = s->dff, r = d->r;
    float *dH = s->scr[2], *dG = s->scr[3], *dU = s->scr[4], *du = s->scr[5], *gdx = s->scr[1];
    (void)chunk;
    double t0 = now_s();
    for (int l = 0; l < computed_experts(s); l++) {
        long o = eoff[l];
        int n = eoff[l + 1] - (int)o;
        if (n == 0) continue;
        expert_w ew = expert_weights(m, s, l);
        const float *G = s->G + o * F, *U = s->U + o * F, *H = s->H + o * F;
        const float *x = s->X + o * D;
        float *dx = DX + o * D;
        adapted_backward(dH, du, GE + o * D, H, rows_or_null(s->ud, o, r), ew.W[2], ew.A[2],
                         ew.B[2], ew.gW[2], ew.gA[2], ew.gB[2], n, F, D, r, d->lora_scale);
        swiglu_backward(dG, dU, dH, G, U, (long)n * F);
        adapted_backward(dx, du, dG, x, rows_or_null(s->ug, o, r), ew.W[0], ew.A[0], ew.B[0],
                         ew.gW[0], ew.gA[0], ew.gB[0], n, D, F, r, d->lora_scale);
        adapted_backward(gdx, du, dU, x, rows_or_null(s->uu, o, r), ew.W[1], ew.A[1], ew.B[1],
                         ew.gW[1], ew.gA[1], ew.gB[1], n, D, F, r, d->lora_scale);
        for (long i = 0; i < (long)n * D; i++) dx[i] += gdx[i];
        molt_a2a_progress(&s->x);
    }
    m->times.expert += now_s() - t0;
    return MOLT_OK;
}

void molt_moe_ffn_forward(molt_model *m, molt_moe_site *s, float *out, const float *x, int Ntok,
                          int training) {
    memset(out, 0, sizeof(float) * (size_t)Ntok * m->dims.d);
    site_forward(m, s, out, x, x, Ntok, training, ffn_forward_chunk, 1.0f);
}

void molt_moe_ffn_backward(molt_model *m, molt_moe_site *s, float *dx, const float *dout,
                           const float *x, int Ntok) {
    site_backward(m, s, dx, dx, dout, x, Ntok, ffn_backward_chunk, 1.0f);
}

void molt_moe_xattn_forward(molt_model *m, molt_moe_site *s, float *out, const float *xr,
                            const float *xv, int Ntok, int training) {
    memset(out, 0, sizeof(float) * (size_t)Ntok * m->dims.d);
    site_forward(m, s, out, xr, xv, Ntok, training, ffn_forward_chunk, 1.0f);
}

void molt_moe_xattn_backward(molt_model *m, molt_moe_site *s, float *dxr, float *dxv,
                             const float *dout, const float *xr, int Ntok) {
    site_backward(m, s, dxr, dxv, dout, xr, Ntok, ffn_backward_chunk, 1.0f);
}

/* ---------------- moe.dispatch = auto ---------------- */

/* Expected (token, expert) selections per token: k for top-k-like routers,
 * 1 for switch, N for soft, and N/2 for the top-p routers (their count is
 * data-dependent; half the experts is the cost model's stated guess). */
static double expected_k(const molt_router_cfg *rc) {
    int k = rc->top_k < 1 ? 1 : rc->top_k > rc->N ? rc->N : rc->top_k;
    switch (rc->kind) {
    case MOLT_ROUTER_SWITCH: return 1;
    case MOLT_ROUTER_SOFT: return rc->N;
    case MOLT_ROUTER_TOPP:
    case MOLT_ROUTER_DYNMOLE: return rc->N > 1 ? rc->N / 2.0 : 1;
    default: return k;
    }
}

static void dispatch_costs(const molt_model *m, const molt_moe_site *s, double alpha, double beta,
                             double *t_a2a, double *t_rep) {
    const double P = m->dims.ep, f = (P - 1) / P;
    const double rows = (double)s->T_cap * expected_k(&s->rc);
    /* alltoall: counts + 4 exchanges (dispatch/return, forward/backward) */
    *t_a2a = 5 * (P - 1) * alpha + beta * 2.0 * rows * (s->in + s->out) * sizeof(float) * f;
    double bytes = 0;
    int ncoll = 0;
    for (int i = 0; i < s->ntens; i++) {
        bytes += (double)s->N * s->ten[i].size * sizeof(float) * f * (s->ten[i].trainable ? 2 : 1);
        ncoll += s->ten[i].trainable ? 2 : 1;
    }
    /* replicate: all-gather of weights, reduce-scatter of their gradients */
    *t_rep = ncoll * (P - 1) * alpha + beta * bytes;
}

int molt_moe_auto_dispatch(molt_model *m, double alpha, double beta, FILE *log) {
    int rc = MOLT_OK;
    if (log)
        fprintf(log, "molt: moe.dispatch = auto: alpha %.1f us/message, beta %.2f GB/s "
                     "(probe over ep_comm); per-step cost per site:\n",
                alpha * 1e6, 1e-9 / beta);
    for (int i = 0; m->sites && i < molt_site_slots(m); i++) {
        molt_moe_site *s = m->sites[i];
        if (!s) continue;
        double ta, tr;
        dispatch_costs(m, s, alpha, beta, &ta, &tr);
        int mode = tr < ta ? MOLT_SITE_REPLICATE : MOLT_SITE_ALLTOALL;
        MOLT_TRY(molt_moe_site_set_mode(m, s, mode));
        if (log)
            fprintf(log, "  %-32s alltoall %8.3f ms  replicate %8.3f ms  -> %s\n", s->name,
                    ta * 1e3, tr * 1e3, mode == MOLT_SITE_REPLICATE ? "replicate" : "alltoall");
    }
    if (log) fflush(log);
done:
    return rc;
}
