/* model_internal.h — activations and MoE sites shared by model.c and
 * moe_block.c; not part of the public API. */
#ifndef MOLT_MODEL_INTERNAL_H
#define MOLT_MODEL_INTERNAL_H
#include "molt/model.h"
#include "molt/plan.h"
#include "molt/router.h"

struct molt_acts {
    int B, T;       /* capacity */
    long N;         /* B*T rows */
    int last_n_seq; /* rows of the last forward */
    long last_step; /* dropout key of the last forward */
    uint64_t last_first;
    int last_training;
    float *x, *xmid, *xn1, *xn2, *rstd1, *rstd2, *q, *k, *v, *att, *P, *gate, *up, *h;
    float *lora_u, *lora_xd, *xf, *rstdf, *logits, *cos_t, *sin_t;
    /* backward scratch */
    float *dres, *dA, *dB, *dq, *dk, *dv, *dgate, *dup, *du, *dS, *drop;
};

/* One router with its experts, and what its forward keeps for backward. */
typedef struct molt_moe_site {
    int layer, slot, N, in, out, dff; /* dff: hidden width of FFN-type experts */
    molt_router_cfg rc;               /* the model's router settings with N = this site's */
    char name[96];                    /* "model.layers.0.mlp.up_proj" or "model.layers.0.mlp" */
    float *z, *p, *w, *ent, *xr;      /* [T,N] x3, [T], router input [T,in] (switch jitter) */
    uint8_t *sel, *soft;
    molt_plan plan;
    float *u, *Y;                       /* plugin: [cap,r], [cap,out] */
    float *G, *U, *H, *ug, *uu, *ud;    /* FFN-type: [cap,dff] x3, [cap,r] x3 */
    float *scr[6];                      /* scratch, T_cap * max(in, out, dff) each */
    float *jf;                          /* switch: jitter factors [T,in] */
    float *dw, *dp, *dz, *dzx;          /* [T,N] backward */
    double *lsum, *gsum;                /* local and global stats: count|psum|wsum [3N] + 5 */
    molt_router_stats local, global;
} molt_moe_site;

/* moe_block.c */
int molt_moe_site_create(molt_moe_site **out, const molt_dims *d, int layer, int slot, int T_cap);
void molt_moe_site_free(molt_moe_site *s);
/* Plugin: y[Ntok,out] += sum_e w_e s B_e A_e xd over selected experts;
 * x is the router input (pre-dropout), xd the dropped-out input. */
void molt_moe_plugin_forward(molt_model *m, molt_moe_site *s, float *y, const float *x,
                             const float *xd, int Ntok, int training);
/* Accumulates dxd (expert path) and dx (router path); weight grads. */
void molt_moe_plugin_backward(molt_model *m, molt_moe_site *s, float *dx, float *dxd,
                              const float *dy, const float *x, const float *xd, int Ntok);
/* FFN block (fused_mlp, ffn): out[Ntok,d] = sum_e w_e E_e(x) (writes). */
void molt_moe_ffn_forward(molt_model *m, molt_moe_site *s, float *out, const float *x, int Ntok,
                          int training);
/* Accumulates dx. */
void molt_moe_ffn_backward(molt_model *m, molt_moe_site *s, float *dx, const float *dout,
                           const float *x, int Ntok);
#endif
