/* model.c — parameters, initialisation and the forward/backward of the whole
 * decoder (include/molt/model.h). Reads top to bottom: registry, init,
 * activations, projection (base + LoRA), forward, backward. */
#include "molt/model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/nn.h"
#include "molt/rng.h"
#include "nn/model_internal.h"


static const char *const molt_layer_proj_group[MOLT_NPROJ] = {"self_attn", "self_attn", "self_attn",
                                                       "self_attn", "mlp",       "mlp",
                                                       "mlp"};

void molt_proj_shape(const molt_dims *d, int p, int *in, int *out) {
    int qd = d->H * d->hd, kd = d->Hkv * d->hd;
    switch (p) {
    case MOLT_PROJ_Q: *in = d->d, *out = qd; break;
    case MOLT_PROJ_K:
    case MOLT_PROJ_V: *in = d->d, *out = kd; break;
    case MOLT_PROJ_O: *in = qd, *out = d->d; break;
    case MOLT_PROJ_GATE:
    case MOLT_PROJ_UP: *in = d->d, *out = d->dff; break;
    default: *in = d->dff, *out = d->d; break;
    }
}

int molt_dims_from_config(molt_dims *d, const molt_config *c) {
    memset(d, 0, sizeof *d);
    d->V = c->model.vocab_size;
    d->d = c->model.d_model;
    d->L = c->model.n_layers;
    d->H = c->model.n_heads;
    d->Hkv = c->model.n_kv_heads;
    d->hd = d->d / d->H;
    d->dff = c->model.d_ff;
    d->T_max = c->model.max_seq_len;
    d->tied = c->model.tie_embeddings;
    d->mode = c->model.mode;
    d->train_norms = c->lora.train_norms;
    d->lora_targets = c->lora.targets;
    d->r = c->lora.r;
    d->lora_scale = (float)(c->lora.alpha / c->lora.r);
    d->dropout = (float)c->lora.dropout;
    d->eps = (float)c->model.norm_eps;
    d->theta = c->model.rope_theta;
    d->seed = c->train.seed;
    d->placement = c->moe.placement;
    d->moe_targets = d->placement == MOLT_PLACE_PLUGIN ? c->moe.targets : 0;
    for (int l = 0; l < d->L && l < MOLT_MAX_LAYERS; l++) d->n_exp[l] = molt_config_experts(c, l);
    d->router = (molt_router_cfg){.kind = c->moe.router,
                                  .N = 0, /* per site */
                                  .top_k = c->moe.top_k,
                                  .keep_top_k = c->moe.keep_top_k,
                                  .top_p = (float)molt_config_top_p(c),
                                  .entropy_threshold = (float)c->moe.entropy_threshold,
                                  .entropy_q = (float)c->moe.entropy_q,
                                  .capacity_factor = (float)(c->moe.capacity_factor > 0
                                                                 ? c->moe.capacity_factor
                                                                 : 1.0)};
    d->jitter = (float)c->moe.jitter;
    d->aux = (molt_aux_cfg){.balance = !!(c->moe.aux & (1u << MOLT_AUX_BALANCE)),
                            .dynmole = !!(c->moe.aux & (1u << MOLT_AUX_DYNMOLE)),
                            .zloss = !!(c->moe.aux & (1u << MOLT_AUX_ZLOSS)),
                            .pa = !!(c->moe.aux & (1u << MOLT_AUX_PA)),
                            .balance_coef = c->moe.balance_coef,
                            .dynmole_entropy_coef = c->moe.dynmole_coef,
                            .dynmole_balance_coef = c->moe.dynmole_balance_coef,
                            .zloss_coef = c->moe.zloss_coef,
                            .pa_coef = c->moe.pa_coef,
                            .pa_balance_coef = c->moe.pa_balance_coef};
    d->aux_mean = c->moe.aux_reduce == MOLT_AUX_MEAN;
    d->experts_tr = c->moe.router == MOLT_ROUTER_FACTOR
                        ? c->factor.train == MOLT_FACTOR_TRAIN_EXPERTS
                        : c->model.mode == MOLT_MODE_FULL;
    d->teacher = d->aux.pa && d->experts_tr && c->moe.placement == MOLT_PLACE_FFN;
    d->pa_teacher_prev = c->factor.pa_input == 1;
    d->ep = 1, d->ep_rank = 0; /* molt_model_create sets the layout's */
    d->dispatch = c->moe.dispatch;
    d->a2a_chunks = c->parallel.a2a_chunks;
    d->capacity_factor = c->moe.router == MOLT_ROUTER_EXPERT_CHOICE ? 0 : c->moe.capacity_factor;
    d->expert_dff = 0;
    d->proj = c->model.projector != MOLT_PROJECTOR_NONE;
    d->feat_dim = d->proj ? c->model.feat_dim : 0;
    d->n_ft = d->proj ? c->model.feat_tokens : 0;
    d->moe_weight = (float)c->moe.moe_weight;
    if (d->placement == MOLT_PLACE_XATTN) {
        if (d->L >= MOLT_MAX_LAYERS)
            return MOLT_ERROR(MOLT_ERR_INPUT, "model.n_layers %d: xattn needs fewer than %d",
                              d->L, MOLT_MAX_LAYERS);
        d->n_exp[d->L] = molt_config_xattn_experts(c);
        d->xattn = d->n_exp[d->L] > 0;
        d->expert_dff = c->moe.expert_d_ff;
        d->experts_tr = 1;
        d->capacity_factor = 0;
    }
    if (d->placement == MOLT_PLACE_FFN) {
        int n0 = d->n_exp[0] > 0 ? d->n_exp[0] : 1;
        d->expert_dff = c->moe.expert_d_ff ? c->moe.expert_d_ff : d->dff / n0;
        if (d->expert_dff < 1)
            return MOLT_ERROR(MOLT_ERR_INPUT, "moe.expert_d_ff: model.d_ff %d / %d experts is 0",
                              d->dff, n0);
    }
    if (d->d % d->H || d->H % d->Hkv || d->hd % 2)
        return MOLT_ERROR(MOLT_ERR_INPUT, "model: d_model %d, n_heads %d, n_kv_heads %d do not "
                                          "give an even head dim shared by whole kv groups",
                          d->d, d->H, d->Hkv);
    return MOLT_OK;
}

/* ---------------- parameter registry ---------------- */

typedef struct {
    molt_model *m;
    int pass;        /* 0: count sizes, 1: assign pointers, 2: describe (molt_model_describe_all) */
    size_t exp_at;   /* pass 1: next offset of an expert trainable (after the dense ones) */
    int expert_id;   /* the expert being registered, or -1 */
    molt_param_desc *desc; /* pass 2: where descriptions go (NULL: count only) */
    int n_desc;
} reg_state;

/* Trainables are laid out dense first, then this rank's expert tensors, so
 * that gradient reduction is one call per group (world, edp_comm). */
static float *reg_param(reg_state *s, float **gptr, const char *path, int rows, int cols,
                        int trainable, int kind, int expert) {
    molt_model *m = s->m;
    size_t n = (size_t)rows * (cols ? cols : 1);
    if (s->pass == 2) {
        if (s->desc) {
            molt_param_desc *d = &s->desc[s->n_desc];
            snprintf(d->path, sizeof d->path, "%s", path);
            d->rows = rows, d->cols = cols, d->trainable = trainable, d->kind = kind;
            d->expert = expert ? s->expert_id : -1;
        }
        s->n_desc++;
        if (gptr) *gptr = NULL;
        return NULL;
    }
    if (s->pass == 0) {
        m->n_params++;
        if (trainable) m->n_train += n;
        else m->n_frozen += n;
        if (trainable && !expert) m->n_dense += n;
        if (gptr) *gptr = NULL;
        return NULL;
    }
    molt_param *p = &m->params[m->n_params++];
    snprintf(p->path, sizeof p->path, "%s", path);
    p->rows = rows, p->cols = cols, p->trainable = trainable, p->kind = kind;
    p->decay = cols > 0;
    p->expert = expert;
    if (trainable) {
        size_t *at = expert ? &s->exp_at : &m->n_train;
        p->offset = *at;
        p->w = m->train + *at;
        p->g = m->grad + *at;
        *at += n;
    } else {
        p->offset = m->n_frozen;
        p->w = m->frozen + m->n_frozen;
        m->n_frozen += n;
    }
    if (gptr) *gptr = p->g;
    return p->w;
}

static float *reg(reg_state *s, float **gptr, const char *path, int rows, int cols, int trainable,
                  int kind) {
    return reg_param(s, gptr, path, rows, cols, trainable, kind, 0);
}

/* Expert e's tensor: registered only on its owner, contiguous with the
 * owner's other experts of the same tensor. Returns the pointer when e is
 * the owner's first expert there (the base of the block), else NULL. */
static float *reg_expert(reg_state *s, float **gbase, const char *path, int e, int rows, int cols,
                         int trainable, int kind) {
    const molt_dims *d = &s->m->dims;
    if (molt_expert_owner(e, d->ep) != d->ep_rank) return NULL;
    float *gp = NULL;
    s->expert_id = e;
    float *wp = reg_param(s, &gp, path, rows, cols, trainable, kind, 1);
    s->expert_id = -1;
    if (molt_expert_slot(e, d->ep) != 0) return NULL;
    *gbase = gp;
    return wp;
}

/* Parrot: the projector (LLaVA's mm_projector names) and the xattn router
 * and experts, held in layers[L]. */
static void register_parrot(reg_state *s) {
    molt_model *m = s->m;
    const molt_dims *d = &m->dims;
    char path[160];
    if (d->proj) {
        const char *pre = "projector/model.mm_projector";
        snprintf(path, sizeof path, "%s.0.weight", pre);
        m->w.proj_w1 = reg(s, &m->g.proj_w1, path, d->d, d->feat_dim, 1, MOLT_PARAM_PROJ);
        snprintf(path, sizeof path, "%s.0.bias", pre);
        m->w.proj_b1 = reg(s, &m->g.proj_b1, path, d->d, 0, 1, MOLT_PARAM_PROJ);
        snprintf(path, sizeof path, "%s.2.weight", pre);
        m->w.proj_w2 = reg(s, &m->g.proj_w2, path, d->d, d->d, 1, MOLT_PARAM_PROJ);
        snprintf(path, sizeof path, "%s.2.bias", pre);
        m->w.proj_b2 = reg(s, &m->g.proj_b2, path, d->d, 0, 1, MOLT_PARAM_PROJ);
    }
    if (!d->xattn) return;
    molt_layer_ptrs dw, dg;
    molt_layer_ptrs *w = s->pass == 1 ? &m->w.layers[d->L] : &dw;
    molt_layer_ptrs *g = s->pass == 1 ? &m->g.layers[d->L] : &dg;
    const int N = d->n_exp[d->L], F = d->expert_dff;
    w->router[MOLT_SITE_MLP] = reg(s, &g->router[MOLT_SITE_MLP], "routers/model.mm_moe/weight", N,
                                   d->d, 1, MOLT_PARAM_ROUTER);
    const int pr[3] = {MOLT_PROJ_GATE, MOLT_PROJ_UP, MOLT_PROJ_DOWN};
    for (int i = 0; i < 3; i++)
        for (int e = 0; e < N; e++) {
            float *gp = NULL;
            snprintf(path, sizeof path, "experts/model.mm_moe/expert_%03d/%s.weight", e,
                     molt_proj_names[pr[i]]);
            float *wp = reg_expert(s, &gp, path, e, i < 2 ? F : d->d, i < 2 ? d->d : F, 1,
                                   MOLT_PARAM_EXPERT);
            if (wp) w->ew[pr[i]] = wp, g->ew[pr[i]] = gp;
        }
}

static void register_all(reg_state *s) {
    molt_model *m = s->m;
    const molt_dims *d = &m->dims;
    int base_tr = d->mode == MOLT_MODE_FULL, norm_tr = base_tr || d->train_norms;
    char path[160];
    m->w.embed = reg(s, &m->g.embed, "base/model.embed_tokens.weight", d->V, d->d, base_tr,
                     MOLT_PARAM_BASE);
    for (int l = 0; l < d->L; l++) {
        /* the counting pass writes pointers into throw-away structs */
        molt_layer_ptrs dw, dg;
        molt_layer_ptrs *w = s->pass == 1 ? &m->w.layers[l] : &dw;
        molt_layer_ptrs *g = s->pass == 1 ? &m->g.layers[l] : &dg;
        snprintf(path, sizeof path, "base/model.layers.%d.input_layernorm.weight", l);
        w->attn_norm = reg(s, &g->attn_norm, path, d->d, 0, norm_tr, MOLT_PARAM_BASE);
        snprintf(path, sizeof path, "base/model.layers.%d.post_attention_layernorm.weight", l);
        w->ffn_norm = reg(s, &g->ffn_norm, path, d->d, 0, norm_tr, MOLT_PARAM_BASE);
        memset(w->router, 0, sizeof w->router), memset(g->router, 0, sizeof g->router);
        memset(w->eA, 0, sizeof w->eA), memset(w->eB, 0, sizeof w->eB);
        memset(g->eA, 0, sizeof g->eA), memset(g->eB, 0, sizeof g->eB);
        memset(w->ew, 0, sizeof w->ew), memset(g->ew, 0, sizeof g->ew);
        w->router_b = g->router_b = NULL;
        memset(w->teacher, 0, sizeof w->teacher), memset(g->teacher, 0, sizeof g->teacher);
        for (int p = 0; p < MOLT_NPROJ; p++) {
            int in, out;
            molt_proj_shape(d, p, &in, &out);
            w->w[p] = g->w[p] = NULL;
            int mlp = p >= MOLT_PROJ_GATE;
            if (!(mlp && d->placement == MOLT_PLACE_FFN)) {
                snprintf(path, sizeof path, "base/model.layers.%d.%s.%s.weight", l,
                         molt_layer_proj_group[p], molt_proj_names[p]);
                w->w[p] = reg(s, &g->w[p], path, out, in, base_tr, MOLT_PARAM_BASE);
            }
            w->A[p] = w->B[p] = g->A[p] = g->B[p] = NULL;
            char module[96];
            snprintf(module, sizeof module, "model.layers.%d.%s.%s", l, molt_layer_proj_group[p],
                     molt_proj_names[p]);
            if ((d->moe_targets & (1u << p)) ||
                (mlp && d->placement == MOLT_PLACE_FUSED_MLP)) {
                int N = d->n_exp[l];
                if (!mlp || d->placement == MOLT_PLACE_PLUGIN) {
                    snprintf(path, sizeof path, "routers/%s/weight", module);
                    w->router[p] = reg(s, &g->router[p], path, N, in, 1, MOLT_PARAM_ROUTER);
                }
                for (int e = 0; e < N; e++) {
                    float *gp = NULL;
                    snprintf(path, sizeof path, "adapters/%s/expert_%03d/lora_A", module, e);
                    float *wp = reg_expert(s, &gp, path, e, d->r, in, 1, MOLT_PARAM_LORA);
                    if (wp) w->eA[p] = wp, g->eA[p] = gp;
                }
                for (int e = 0; e < N; e++) {
                    float *gp = NULL;
                    snprintf(path, sizeof path, "adapters/%s/expert_%03d/lora_B", module, e);
                    float *wp = reg_expert(s, &gp, path, e, out, d->r, 1, MOLT_PARAM_LORA);
                    if (wp) w->eB[p] = wp, g->eB[p] = gp;
                }
                continue;
            }
            if (!(d->lora_targets & (1u << p))) continue;
            snprintf(path, sizeof path, "adapters/model.layers.%d.%s.%s/shared/lora_A", l,
                     molt_layer_proj_group[p], molt_proj_names[p]);
            w->A[p] = reg(s, &g->A[p], path, d->r, in, 1, MOLT_PARAM_LORA);
            snprintf(path, sizeof path, "adapters/model.layers.%d.%s.%s/shared/lora_B", l,
                     molt_layer_proj_group[p], molt_proj_names[p]);
            w->B[p] = reg(s, &g->B[p], path, out, d->r, 1, MOLT_PARAM_LORA);
        }
        if (d->placement == MOLT_PLACE_FUSED_MLP || d->placement == MOLT_PLACE_FFN) {
            int N = d->n_exp[l];
            snprintf(path, sizeof path, "routers/model.layers.%d.mlp/weight", l);
            w->router[MOLT_SITE_MLP] =
                reg(s, &g->router[MOLT_SITE_MLP], path, N, d->d, 1, MOLT_PARAM_ROUTER);
            if (d->router.kind == MOLT_ROUTER_FACTOR) {
                snprintf(path, sizeof path, "routers/model.layers.%d.mlp/bias", l);
                w->router_b = reg(s, &g->router_b, path, N, 0, 1, MOLT_PARAM_ROUTER);
            }
        }
        if (d->placement == MOLT_PLACE_FFN) {
            const int pr[3] = {MOLT_PROJ_GATE, MOLT_PROJ_UP, MOLT_PROJ_DOWN};
            for (int i = 0; i < 3; i++) {
                int p = pr[i], F = d->expert_dff;
                for (int e = 0; e < d->n_exp[l]; e++) {
                    float *gp = NULL;
                    snprintf(path, sizeof path, "experts/model.layers.%d.mlp/expert_%03d/%s.weight",
                             l, e, molt_proj_names[p]);
                    float *wp = reg_expert(s, &gp, path, e, i < 2 ? F : d->d, i < 2 ? d->d : F,
                                           d->experts_tr, MOLT_PARAM_EXPERT);
                    if (wp) w->ew[p] = wp, g->ew[p] = gp;
                }
                if (d->teacher) { /* the dense FFN the experts came from, frozen */
                    float *tg = NULL;
                    snprintf(path, sizeof path, "teacher/model.layers.%d.mlp.%s.weight", l,
                             molt_proj_names[p]);
                    w->teacher[i] = reg(s, &tg, path, i < 2 ? d->dff : d->d, i < 2 ? d->d : d->dff,
                                        0, MOLT_PARAM_BASE);
                }
            }
        }
    }
    m->w.final_norm = reg(s, &m->g.final_norm, "base/model.norm.weight", d->d, 0, norm_tr,
                          MOLT_PARAM_BASE);
    m->w.lm_head = NULL, m->g.lm_head = NULL;
    if (!d->tied)
        m->w.lm_head =
            reg(s, &m->g.lm_head, "base/lm_head.weight", d->V, d->d, base_tr, MOLT_PARAM_BASE);
    register_parrot(s);
}

/* FNV-1a of the path: the init stream of a parameter depends on its name only. */

static uint32_t path_id(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void init_params(molt_model *m, uint64_t seed) {
    for (int i = 0; i < m->n_params; i++) {
        molt_param *p = &m->params[i];
        size_t n = (size_t)p->rows * (p->cols ? p->cols : 1);
        molt_rng r;
        molt_rng_init(&r, seed, MOLT_RNG_INIT, path_id(p->path), 0, 0);
        const char *tail = strrchr(p->path, '/');
        if (p->kind == MOLT_PARAM_PROJ) { /* nn.Linear: Kaiming-uniform weight, zero bias */
            float bound = p->cols ? 1.0f / sqrtf((float)p->cols) : 0.0f;
            for (size_t j = 0; j < n; j++) p->w[j] = bound * (2.0f * molt_rng_uniform(&r) - 1.0f);
        } else if (p->cols == 0) { /* RMSNorm weight */
            for (size_t j = 0; j < n; j++) p->w[j] = 1.0f;
        } else if (tail && !strcmp(tail, "/lora_A")) {
            /* Kaiming-uniform with a = sqrt(5): bound = 1/sqrt(fan_in) (PEFT). */
            float bound = 1.0f / sqrtf((float)p->cols);
            for (size_t j = 0; j < n; j++) p->w[j] = bound * (2.0f * molt_rng_uniform(&r) - 1.0f);
        } else if (p->kind == MOLT_PARAM_ROUTER && strstr(p->path, ".mlp/bias")) {
            memset(p->w, 0, n * sizeof(float));
        } else if (p->kind == MOLT_PARAM_ROUTER && !strstr(p->path, ".mlp/weight")) {
            /* plugin routers: Kaiming-uniform a = sqrt(5), as nn.Linear */
            float bound = 1.0f / sqrtf((float)p->cols);
            for (size_t j = 0; j < n; j++) p->w[j] = bound * (2.0f * molt_rng_uniform(&r) - 1.0f);
        } else if (tail && !strcmp(tail, "/lora_B")) {
            memset(p->w, 0, n * sizeof(float));
        } else {
            for (size_t j = 0; j < n; j++) p->w[j] = 0.02f * molt_rng_normal(&r);
        }
    }
}

/* ---------------- activations ---------------- */

static void acts_free(molt_acts *a) {
    if (!a) return;
    float **bufs[] = {&a->x,     &a->xmid,   &a->xn1,   &a->xn2,    &a->rstd1, &a->rstd2,
                      &a->q,     &a->k,      &a->v,     &a->att,    &a->P,     &a->gate,
                      &a->up,    &a->h,      &a->lora_u, &a->lora_xd, &a->xf,  &a->rstdf,
                      &a->logits, &a->cos_t, &a->sin_t, &a->dres,   &a->dA,    &a->dB,
                      &a->dq,    &a->dk,     &a->dv,    &a->dgate,  &a->dup,   &a->du,
                      &a->dS,    &a->drop,   &a->fh1,   &a->fg1,    &a->fhv,   &a->fatt,
                      &a->fz,    &a->fxr,    &a->fxo,   &a->fdhv,   &a->fdxr,  &a->fdg,
                      &a->fdfeat};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
    free(a);
}

static int acts_create(molt_acts **out, const molt_dims *d, int B, int T) {
    int rc = MOLT_OK;
    molt_acts *a = NULL;
    MOLT_ALLOC(a, 1);
    long N = (long)B * T, L = d->L, qd = (long)d->H * d->hd, kd = (long)d->Hkv * d->hd;
    long wmax = d->dff > qd ? d->dff : qd;
    if (d->d > wmax) wmax = d->d;
    a->B = B, a->T = T, a->N = N;
    MOLT_ALLOC(a->x, (L + 1) * N * d->d);
    MOLT_ALLOC(a->xmid, L * N * d->d);
    MOLT_ALLOC(a->xn1, L * N * d->d);
    MOLT_ALLOC(a->xn2, L * N * d->d);
    MOLT_ALLOC(a->rstd1, L * N);
    MOLT_ALLOC(a->rstd2, L * N);
    MOLT_ALLOC(a->q, L * N * qd);
    MOLT_ALLOC(a->k, L * N * kd);
    MOLT_ALLOC(a->v, L * N * kd);
    MOLT_ALLOC(a->att, L * N * qd);
    MOLT_ALLOC(a->P, L * B * d->H * (long)T * T);
    MOLT_ALLOC(a->gate, L * N * d->dff);
    MOLT_ALLOC(a->up, L * N * d->dff);
    MOLT_ALLOC(a->h, L * N * d->dff);
    if (d->lora_targets || d->moe_targets) {
        MOLT_ALLOC(a->lora_u, L * MOLT_NPROJ * N * d->r);
        MOLT_ALLOC(a->du, N * d->r);
        if (d->dropout > 0) {
            MOLT_ALLOC(a->lora_xd, L * MOLT_NPROJ * N * wmax);
            MOLT_ALLOC(a->drop, N * wmax);
        }
    }
    MOLT_ALLOC(a->xf, N * d->d);
    MOLT_ALLOC(a->rstdf, N);
    MOLT_ALLOC(a->logits, N * d->V);
    MOLT_ALLOC(a->cos_t, (long)T * d->hd / 2);
    MOLT_ALLOC(a->sin_t, (long)T * d->hd / 2);
    MOLT_ALLOC(a->dres, N * d->d);
    MOLT_ALLOC(a->dA, N * wmax);
    MOLT_ALLOC(a->dB, N * wmax);
    MOLT_ALLOC(a->dq, N * qd);
    MOLT_ALLOC(a->dk, N * kd);
    MOLT_ALLOC(a->dv, N * kd);
    MOLT_ALLOC(a->dgate, N * d->dff);
    MOLT_ALLOC(a->dup, N * d->dff);
    MOLT_ALLOC(a->dS, (long)T * T);
    if (d->proj) {
        const long Nf = (long)B * d->n_ft;
        float **fb[] = {&a->fh1, &a->fg1, &a->fhv, &a->fxr, &a->fxo, &a->fdhv, &a->fdxr, &a->fdg};
        for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) MOLT_ALLOC(*fb[i], Nf * d->d);
        MOLT_ALLOC(a->fatt, N);
        MOLT_ALLOC(a->fz, (long)B * d->d);
        MOLT_ALLOC(a->fdfeat, Nf * d->feat_dim);
    }
    rope_tables(a->cos_t, a->sin_t, T, d->hd, d->theta);
    *out = a;
    a = NULL;
done:
    acts_free(a);
    return rc;
}

int molt_model_create(molt_model *m, const molt_config *c, int B, int T, const molt_layout *lay) {
    int rc = MOLT_OK;
    memset(m, 0, sizeof *m);
    if (lay) m->lay = *lay;
    else molt_layout_single(&m->lay);
    MOLT_TRY(molt_dims_from_config(&m->dims, c));
    m->dims.ep = m->lay.ep, m->dims.ep_rank = m->lay.ep_rank;
    if (T > m->dims.T_max)
        MOLT_FAIL(MOLT_ERR_INPUT, "sequence length %d exceeds model.max_seq_len %d", T,
                  m->dims.T_max);
    reg_state s = {m, 0, 0, -1, NULL, 0};
    register_all(&s);
    MOLT_ALLOC(m->params, m->n_params);
    MOLT_ALLOC(m->frozen, m->n_frozen);
    MOLT_ALLOC(m->train, m->n_train);
    MOLT_ALLOC(m->grad, m->n_train);
    MOLT_ALLOC(m->w.layers, m->dims.L + 1);
    MOLT_ALLOC(m->g.layers, m->dims.L + 1);
    s.exp_at = m->n_dense;
    m->n_params = 0, m->n_frozen = 0, m->n_train = 0;
    s.pass = 1;
    register_all(&s);
    m->n_train = s.exp_at; /* dense + experts */
    init_params(m, c->train.seed);
    MOLT_TRY(acts_create(&m->acts, &m->dims, B, T));
    m->act_B = B, m->act_T = T;
    MOLT_ALLOC(m->sites, (long)molt_site_slots(m));
    for (int l = 0; l < m->dims.L; l++) {
        if (m->dims.n_exp[l] <= 0) continue;
        for (int slot = 0; slot < MOLT_SITE_SLOTS; slot++)
            if (m->w.layers[l].router[slot])
                MOLT_TRY(molt_moe_site_create(&m->sites[l * MOLT_SITE_SLOTS + slot], m, l,
                                              slot, B * T));
    }
    if (m->dims.xattn)
        MOLT_TRY(molt_moe_site_create(&m->sites[m->dims.L * MOLT_SITE_SLOTS + MOLT_SITE_MLP], m,
                                      m->dims.L, MOLT_SITE_MLP, B * m->dims.n_ft));
    if (m->dims.proj && T < 1 + m->dims.n_ft)
        MOLT_FAIL(MOLT_ERR_INPUT, "sequence length %d leaves no room after <bos> and "
                  "model.feat_tokens = %d", T, m->dims.n_ft);
done:
    if (rc) molt_model_free(m);
    return rc;
}

void molt_model_free(molt_model *m) {
    if (m->sites)
        for (int i = 0; i < molt_site_slots(m); i++) molt_moe_site_free(m->sites[i]);
    free(m->sites);
    free(m->params), free(m->frozen), free(m->train), free(m->grad);
    free(m->w.layers), free(m->g.layers);
    acts_free(m->acts);
    memset(m, 0, sizeof *m);
}

int molt_model_describe_all(const molt_model *m, molt_param_desc **out, int *n) {
    int rc = MOLT_OK;
    molt_model view = *m; /* register_all writes top-level pointers: into a copy */
    view.dims.ep = 1, view.dims.ep_rank = 0;
    reg_state s = {&view, 2, 0, -1, NULL, 0};
    *out = NULL, *n = 0;
    register_all(&s);
    MOLT_ALLOC(s.desc, s.n_desc > 0 ? s.n_desc : 1);
    s.n_desc = 0;
    register_all(&s);
    *out = s.desc, *n = s.n_desc;
done:
    return rc;
}

const molt_param *molt_model_find(const molt_model *m, const char *path) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].path, path)) return &m->params[i];
    return NULL;
}

const float *molt_model_logits(const molt_model *m) {
    return m->acts->logits;
}

/* ---------------- projections: base GEMM + LoRA branch ---------------- */

/* keep[n, j] = 0 or 1/(1-p), a pure function of (seed, step, global sample,
 * layer, projection, position, feature): identical at every layout. */
static void dropout_factors(float *keep, const molt_model *m, int l, int p, int n_seq, int in) {
    const molt_acts *a = m->acts;
    float pr = m->dims.dropout, scale = 1.0f / (1.0f - pr);
    for (int b = 0; b < n_seq; b++) {
        molt_rng r;
        molt_rng_init(&r, m->dims.seed, MOLT_RNG_DROPOUT, (uint32_t)a->last_step,
                      (uint32_t)(a->last_first + (uint64_t)b), (uint32_t)(l * 16 + p));
        float *row = keep + (long)b * a->T * in;
        for (long j = 0; j < (long)a->T * in; j++) row[j] = molt_rng_uniform(&r) < pr ? 0.0f : scale;
    }
}

/* y[N,out] = x W^T + scale B A drop(x). */
static void proj_forward(molt_model *m, int l, int p, float *y, const float *x, int n_seq) {
    const molt_dims *d = &m->dims;
    molt_acts *a = m->acts;
    const molt_layer_ptrs *w = &m->w.layers[l];
    int in, out, N = n_seq * a->T;
    molt_proj_shape(d, p, &in, &out);
    linear_forward(y, x, w->w[p], N, in, out, 0);
    molt_moe_site *site = m->sites[l * MOLT_SITE_SLOTS + p];
    if (!w->A[p] && !site) return;
    const float *xd = x;
    if (d->dropout > 0 && a->last_training) {
        float *buf = a->lora_xd + ((long)l * MOLT_NPROJ + p) * a->N * (d->dff > d->d ? d->dff : d->d);
        dropout_factors(a->drop, m, l, p, n_seq, in);
        for (long i = 0; i < (long)N * in; i++) buf[i] = x[i] * a->drop[i];
        xd = buf;
    }
    if (site) {
        molt_moe_plugin_forward(m, site, y, x, xd, N, a->last_training);
        return;
    }
    float *u = a->lora_u + ((long)l * MOLT_NPROJ + p) * a->N * d->r;
    lora_forward(y, u, xd, w->A[p], w->B[p], N, in, out, d->r, d->lora_scale);
}

/* dx[N,in] += dy W + LoRA path; weight gradients where trainable. */
static void proj_backward(molt_model *m, int l, int p, float *dx, const float *dy, const float *x,
                          int n_seq) {
    const molt_dims *d = &m->dims;
    molt_acts *a = m->acts;
    const molt_layer_ptrs *w = &m->w.layers[l], *g = &m->g.layers[l];
    int in, out, N = n_seq * a->T;
    molt_proj_shape(d, p, &in, &out);
    linear_backward(dx, g->w[p], dy, x, w->w[p], N, in, out);
    molt_moe_site *site = m->sites[l * MOLT_SITE_SLOTS + p];
    if (site) {
        if (d->dropout > 0 && a->last_training) {
            const float *xd =
                a->lora_xd + ((long)l * MOLT_NPROJ + p) * a->N * (d->dff > d->d ? d->dff : d->d);
            float *dxd = a->dB;
            memset(dxd, 0, sizeof(float) * (size_t)N * in);
            molt_moe_plugin_backward(m, site, dx, dxd, dy, x, xd, N);
            dropout_factors(a->drop, m, l, p, n_seq, in);
            for (long i = 0; i < (long)N * in; i++) dx[i] += dxd[i] * a->drop[i];
        } else {
            molt_moe_plugin_backward(m, site, dx, dx, dy, x, x, N);
        }
        return;
    }
    if (!w->A[p]) return;
    const float *u = a->lora_u + ((long)l * MOLT_NPROJ + p) * a->N * d->r;
    if (d->dropout > 0 && a->last_training) {
        const float *xd =
            a->lora_xd + ((long)l * MOLT_NPROJ + p) * a->N * (d->dff > d->d ? d->dff : d->d);
        float *dxd = a->dB; /* scratch [N, wmax]; dB is free inside a projection */
        memset(dxd, 0, sizeof(float) * (size_t)N * in);
        lora_backward(dxd, g->A[p], g->B[p], a->du, dy, xd, u, w->A[p], w->B[p], N, in, out, d->r,
                      d->lora_scale);
        dropout_factors(a->drop, m, l, p, n_seq, in);
        for (long i = 0; i < (long)N * in; i++) dx[i] += dxd[i] * a->drop[i];
    } else {
        lora_backward(dx, g->A[p], g->B[p], a->du, dy, x, u, w->A[p], w->B[p], N, in, out, d->r,
                      d->lora_scale);
    }
}

/* ---------------- forward ---------------- */

double molt_model_forward(molt_model *m, const molt_batch *b, long step, uint64_t first,
                          int training, long *count) {
    const molt_dims *d = &m->dims;
    molt_acts *a = m->acts;
    const int T = a->T, ns = b->n_seq, N = ns * T;
    const long S = a->N; /* per-layer stride of activations */
    const long qd = (long)d->H * d->hd, kd = (long)d->Hkv * d->hd;
    a->last_n_seq = ns, a->last_step = step, a->last_first = first;
    a->last_training = training;

    embedding_forward(a->x, b->inputs, m->w.embed, N, d->d);
    if (d->proj) molt_xattn_forward(m, b, training); /* features into positions 1 … n_ft */
    for (int l = 0; l < d->L; l++) {
        const molt_layer_ptrs *w = &m->w.layers[l];
        float *x = a->x + l * S * d->d, *xnext = a->x + (l + 1) * S * d->d;
        float *xmid = a->xmid + l * S * d->d, *xn1 = a->xn1 + l * S * d->d;
        float *xn2 = a->xn2 + l * S * d->d;
        float *q = a->q + l * S * qd, *k = a->k + l * S * kd, *v = a->v + l * S * kd;
        float *att = a->att + l * S * qd, *P = a->P + (long)l * a->B * d->H * T * T;
        float *gate = a->gate + l * S * d->dff, *up = a->up + l * S * d->dff;
        float *h = a->h + l * S * d->dff;

        rmsnorm_forward(xn1, a->rstd1 + l * S, x, w->attn_norm, N, d->d, d->eps);
        proj_forward(m, l, MOLT_PROJ_Q, q, xn1, ns);
        proj_forward(m, l, MOLT_PROJ_K, k, xn1, ns);
        proj_forward(m, l, MOLT_PROJ_V, v, xn1, ns);
        rope_forward(q, a->cos_t, a->sin_t, N, T, d->H, d->hd);
        rope_forward(k, a->cos_t, a->sin_t, N, T, d->Hkv, d->hd);
        attention_forward(att, P, q, k, v, ns, T, d->H, d->Hkv, d->hd);
        proj_forward(m, l, MOLT_PROJ_O, xmid, att, ns);
        for (long i = 0; i < (long)N * d->d; i++) xmid[i] += x[i];

        rmsnorm_forward(xn2, a->rstd2 + l * S, xmid, w->ffn_norm, N, d->d, d->eps);
        molt_moe_site *ffn_site = m->sites[l * MOLT_SITE_SLOTS + MOLT_SITE_MLP];
        if (ffn_site) {
            molt_moe_ffn_forward(m, ffn_site, xnext, xn2, N, training);
        } else {
            proj_forward(m, l, MOLT_PROJ_GATE, gate, xn2, ns);
            proj_forward(m, l, MOLT_PROJ_UP, up, xn2, ns);
            swiglu_forward(h, gate, up, (long)N * d->dff);
            proj_forward(m, l, MOLT_PROJ_DOWN, xnext, h, ns);
        }
        for (long i = 0; i < (long)N * d->d; i++) xnext[i] += xmid[i];
    }
    rmsnorm_forward(a->xf, a->rstdf, a->x + d->L * S * d->d, m->w.final_norm, N, d->d, d->eps);
    linear_forward(a->logits, a->xf, d->tied ? m->w.embed : m->w.lm_head, N, d->d, d->V, 0);
    return cross_entropy_forward(a->logits, b->targets, N, d->V, count);
}

/* ---------------- backward ---------------- */

void molt_model_backward(molt_model *m, const molt_batch *b, float scale) {
    const molt_dims *d = &m->dims;
    molt_acts *a = m->acts;
    const int T = a->T, ns = a->last_n_seq, N = ns * T;
    const long S = a->N, qd = (long)d->H * d->hd, kd = (long)d->Hkv * d->hd;
    float *dres = a->dres;

    /* logits = xf Whead^T; dlogits overwrites the logits */
    cross_entropy_backward(a->logits, a->logits, b->targets, N, d->V, scale);
    float *dxf = a->dA;
    memset(dxf, 0, sizeof(float) * (size_t)N * d->d);
    linear_backward(dxf, d->tied ? m->g.embed : m->g.lm_head, a->logits, a->xf,
                    d->tied ? m->w.embed : m->w.lm_head, N, d->d, d->V);
    memset(dres, 0, sizeof(float) * (size_t)N * d->d);
    rmsnorm_backward(dres, m->g.final_norm, dxf, a->x + d->L * S * d->d, m->w.final_norm, a->rstdf,
                     N, d->d);

    for (int l = d->L - 1; l >= 0; l--) {
        const molt_layer_ptrs *w = &m->w.layers[l], *g = &m->g.layers[l];
        float *x = a->x + l * S * d->d, *xmid = a->xmid + l * S * d->d;
        float *xn1 = a->xn1 + l * S * d->d, *xn2 = a->xn2 + l * S * d->d;
        float *q = a->q + l * S * qd, *k = a->k + l * S * kd, *v = a->v + l * S * kd;
        float *att = a->att + l * S * qd, *P = a->P + (long)l * a->B * d->H * T * T;
        float *gate = a->gate + l * S * d->dff, *up = a->up + l * S * d->dff;
        float *h = a->h + l * S * d->dff;

        /* FFN block: dres is the gradient of the layer output */
        molt_moe_site *ffn_site = m->sites[l * MOLT_SITE_SLOTS + MOLT_SITE_MLP];
        float *dxn2 = a->dA;
        if (ffn_site) {
            memset(dxn2, 0, sizeof(float) * (size_t)N * d->d);
            molt_moe_ffn_backward(m, ffn_site, dxn2, dres, xn2, N);
        } else {
            float *dh = a->dA;
            memset(dh, 0, sizeof(float) * (size_t)N * d->dff);
            proj_backward(m, l, MOLT_PROJ_DOWN, dh, dres, h, ns);
            swiglu_backward(a->dgate, a->dup, dh, gate, up, (long)N * d->dff);
            memset(dxn2, 0, sizeof(float) * (size_t)N * d->d);
            proj_backward(m, l, MOLT_PROJ_GATE, dxn2, a->dgate, xn2, ns);
            proj_backward(m, l, MOLT_PROJ_UP, dxn2, a->dup, xn2, ns);
        }
        rmsnorm_backward(dres, g->ffn_norm, dxn2, xmid, w->ffn_norm, a->rstd2 + l * S, N, d->d);

        /* attention block: dres is now the gradient of xmid */
        float *datt = a->dA;
        memset(datt, 0, sizeof(float) * (size_t)N * qd);
        proj_backward(m, l, MOLT_PROJ_O, datt, dres, att, ns);
        memset(a->dk, 0, sizeof(float) * (size_t)N * kd);
        memset(a->dv, 0, sizeof(float) * (size_t)N * kd);
        attention_backward(a->dq, a->dk, a->dv, a->dS, datt, P, q, k, v, ns, T, d->H, d->Hkv,
                           d->hd);
        rope_backward(a->dq, a->cos_t, a->sin_t, N, T, d->H, d->hd);
        rope_backward(a->dk, a->cos_t, a->sin_t, N, T, d->Hkv, d->hd);
        float *dxn1 = a->dA;
        memset(dxn1, 0, sizeof(float) * (size_t)N * d->d);
        proj_backward(m, l, MOLT_PROJ_Q, dxn1, a->dq, xn1, ns);
        proj_backward(m, l, MOLT_PROJ_K, dxn1, a->dk, xn1, ns);
        proj_backward(m, l, MOLT_PROJ_V, dxn1, a->dv, xn1, ns);
        rmsnorm_backward(dres, g->attn_norm, dxn1, x, w->attn_norm, a->rstd1 + l * S, N, d->d);
    }
    if (d->proj) molt_xattn_backward(m, b, dres); /* and clears the feature rows of dres */
    if (m->g.embed) embedding_backward(m->g.embed, dres, b->inputs, N, d->d);
}

/* ---------------- MoE statistics, auxiliary losses, diagnostics ---------------- */

int molt_model_has_moe(const molt_model *m) {
    for (int i = 0; m->sites && i < molt_site_slots(m); i++)
        if (m->sites[i]) return 1;
    return 0;
}

static void stats_zero(molt_router_stats *st, int N) {
    memset(st->count, 0, sizeof(double) * (3 * (size_t)N + MOLT_SITE_NSTATS));
    st->ent_sum = st->zsum = st->tokens = st->selections = 0;
    st->pa_sum = st->pabal_sum = 0;
}

void molt_moe_stats_reset(molt_model *m) {
    for (int i = 0; m->sites && i < molt_site_slots(m); i++)
        if (m->sites[i]) stats_zero(&m->sites[i]->local, m->sites[i]->N);
}

/* Stats travel as one double vector per site: count|psum|wsum [3N], then
 * soft fallbacks [3N], ent_sum, zsum, tokens, selections [3N+1..4], tokens
 * without an expert [3N+5], (token, expert) pairs cut by capacity [3N+6],
 * the pa sums [3N+7..8]. */
int molt_moe_stats_reduce(molt_model *m, MPI_Comm comm) {
    int rc = MOLT_OK, world = 1;
    MOLT_MPI(MPI_Comm_size(comm, &world));
    for (int i = 0; m->sites && i < molt_site_slots(m); i++) {
        molt_moe_site *s = m->sites[i];
        if (!s) continue;
        const int N = s->N;
        double *v = s->lsum;
        v[3 * N + 1] = s->local.ent_sum, v[3 * N + 2] = s->local.zsum;
        v[3 * N + 3] = s->local.tokens, v[3 * N + 4] = s->local.selections;
        v[3 * N + 7] = s->local.pa_sum, v[3 * N + 8] = s->local.pabal_sum;
        if (world > 1)
            MOLT_MPI(MPI_Allreduce(v, s->gsum, 3 * N + MOLT_SITE_NSTATS, MPI_DOUBLE, MPI_SUM, comm));
        else
            memcpy(s->gsum, v, sizeof(double) * (3 * (size_t)N + MOLT_SITE_NSTATS));
        double *gv = s->gsum;
        s->global.ent_sum = gv[3 * N + 1], s->global.zsum = gv[3 * N + 2];
        s->global.tokens = gv[3 * N + 3], s->global.selections = gv[3 * N + 4];
        s->global.pa_sum = gv[3 * N + 7], s->global.pabal_sum = gv[3 * N + 8];
    }
done:
    return rc;
}

double molt_moe_aux_loss(const molt_model *m) {
    double total = 0;
    int n = 0;
    for (int i = 0; m->sites && i < molt_site_slots(m); i++) {
        const molt_moe_site *s = m->sites[i];
        if (!s) continue;
        molt_aux_values v = molt_aux_loss(&m->dims.aux, &s->rc, &s->global);
        total += v.balance + v.dynmole + v.zloss + v.pa;
        n++;
    }
    return m->dims.aux_mean && n ? total / n : total;
}

cJSON *molt_moe_diagnostics(const molt_model *m) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; m->sites && i < molt_site_slots(m); i++) {
        const molt_moe_site *s = m->sites[i];
        if (!s) continue;
        const molt_router_stats *g = &s->global;
        double T = g->tokens > 0 ? g->tokens : 1;
        cJSON *o = cJSON_CreateObject(), *load = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "site", s->name);
        for (int e = 0; e < s->N; e++)
            cJSON_AddItemToArray(load, cJSON_CreateNumber(g->count[e] / (g->selections > 0 ? g->selections : 1)));
        cJSON_AddItemToObject(o, "load", load);
        cJSON_AddNumberToObject(o, "entropy", g->ent_sum / T);
        cJSON_AddNumberToObject(o, "soft_frac", s->gsum[3 * s->N] / T);
        cJSON_AddNumberToObject(o, "experts_per_token", g->selections / T);
        cJSON_AddNumberToObject(o, "dropped_tokens", s->gsum[3 * s->N + 5]);
        cJSON_AddNumberToObject(o, "capacity_dropped", s->gsum[3 * s->N + 6]);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static const molt_moe_site *report_site(const molt_model *m) {
    if (m->sites && m->dims.xattn) return m->sites[m->dims.L * MOLT_SITE_SLOTS + MOLT_SITE_MLP];
    for (int l = m->dims.L - 1; m->sites && l >= 0; l--)
        for (int slot = 0; slot < MOLT_SITE_SLOTS; slot++)
            if (m->sites[l * MOLT_SITE_SLOTS + slot]) return m->sites[l * MOLT_SITE_SLOTS + slot];
    return NULL;
}

int molt_moe_task_routing(const molt_model *m, const molt_batch *b, double *counts, char *name,
                          size_t name_len) {
    const molt_moe_site *s = report_site(m);
    if (!s) return 0;
    if (name) snprintf(name, name_len, "%s", s->name);
    if (!counts) return s->N;
    const int T = m->acts->T, ns = m->acts->last_n_seq;
    if (s->layer == m->dims.L) { /* xattn: one routing per sample; its chosen expert = argmax w */
        for (int j = 0; j < ns; j++) {
            int task = b->task[j], best = 0;
            if (task < 0 || task >= MOLT_NTASKS) continue;
            const float *w = s->w + (long)j * m->dims.n_ft * s->N;
            for (int e = 1; e < s->N; e++)
                if (w[e] > w[best]) best = e;
            counts[(long)task * s->N + best] += 1;
        }
        return s->N;
    }
    for (int j = 0; j < ns; j++) {
        int task = b->task[j];
        if (task < 0 || task >= MOLT_NTASKS) continue;
        for (int t = 0; t < T; t++) {
            long row = (long)j * T + t;
            if (b->inputs[row] == MOLT_TOK_PAD) continue;
            for (int e = 0; e < s->N; e++)
                counts[(long)task * s->N + e] += s->sel[row * s->N + e];
        }
    }
    return s->N;
}
