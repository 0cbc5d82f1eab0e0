/* model_internal.h — activations and MoE sites shared by model.c and
 * moe_block.c; not part of the public API. */
#ifndef MOLT_MODEL_INTERNAL_H
#define MOLT_MODEL_INTERNAL_H
#include "molt/a2a.h"
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
    /* Parrot (xattn.c), rows = B * n_ft feature tokens: projector h1 = F W1^T + b1,
     * g1 = gelu(h1), hv = g1 W2^T + b2; per sample the prompt attention att [B*T]
     * and summary z [B, d]; xr = z per feature token (the router input);
     * xo = the module's output; backward scratch dhv, dxr, dg, dfeat */
    float *fh1, *fg1, *fhv, *fatt, *fz, *fxr, *fxo, *fdhv, *fdxr, *fdg, *fdfeat;
};

/* Scalars after a site's [3N] per-expert stats: soft, ent, z, tokens,
 * selections, dropped, capacity cut, pa KL sum, pa balance sum, spare. */
enum { MOLT_SITE_NSTATS = 10 };

/* How a site's experts meet their tokens (DESIGN §5). */
enum { MOLT_SITE_LOCAL = 0, MOLT_SITE_ALLTOALL = 1, MOLT_SITE_REPLICATE = 2 };

/* One expert tensor of a site (e.g. every expert's lora_A): this rank's
 * experts are contiguous at w (g: their gradients, NULL if frozen), `size`
 * floats each; replicate mode gathers all N into w_all (rank-major). */
typedef struct {
    float *w, *g;
    long size;
    float *w_all, *g_all;
    int trainable;
} molt_expert_tensor;

/* One router with its experts, and what its forward keeps for backward. */
typedef struct molt_moe_site {
    int layer, slot, N, in, out, dff; /* dff: hidden width of FFN-type experts */
    molt_router_cfg rc;               /* the model's router settings with N = this site's */
    char name[96];                    /* "model.layers.0.mlp.up_proj" or "model.layers.0.mlp" */
    int T_cap, wmax;                  /* token rows per forward at most; widest row */
    int mode, nl, ep;                 /* MOLT_SITE_*; experts held by this rank; ep ranks */
    int ntens;
    molt_expert_tensor ten[6];        /* plugin: A, B; fused_mlp: gate A, B, up A, B, down A, B;
                                         ffn: gate, up, down */
    float *z, *p, *w, *ent, *xr;      /* [T,N] x3, [T], router input [T,in] (switch jitter) */
    uint8_t *sel, *soft, *keep;       /* keep: sel after the capacity cut */
    float *jf;                        /* switch: jitter factors [T,in] */
    float *dw, *dp, *dz, *dzx;        /* [T,N] backward */
    molt_plan plan;
    molt_a2a x;
    int cap_s, cap_r, blk;            /* rows: sent, received, one expert's block at most */
    float *xs, *ys, *gy, *dxs;        /* sender side, plan order [cap_s, in | out] */
    float *X, *Yo, *GE, *DX;          /* owner side [cap_r, in | out] (the sender's when P = 1) */
    float *u, *G, *U, *H, *ug, *uu, *ud; /* saved on the owner: [cap_r, r | dff] */
    float *scr[6];                    /* scratch, blk * wmax each */
    int *rep_cnt, *rep_first;         /* replicate: [ep] experts on, first slot of each rank */
    float *rep_tmp, *rep_scr;         /* this rank's summed gradients; chunked-path scratch */
    void *cap_loc, *cap_all;          /* capacity: local and gathered (weight, expert, token) */
    int *cap_cnt, *cap_dsp;           /* [world] */
    void *rsort;                      /* router sort scratch */
    int fault;                        /* test builds: fail in the next training forward */
    long fault_bwd;                   /* test builds: fail in the backward of this step (1-based) */
    int force_e;                      /* test builds: route every token to this expert (-1: off) */
    double *lsum, *gsum;              /* local and global stats: count|psum|wsum [3N] + NSTATS */
    float *ell;                       /* pa: [T,N] errors of every expert against the teacher */
    float *paG, *paU, *paY, *paT;     /* pa: one expert on all tokens [T,dff] x2, [T,d] x2 */
    double *pa_scr;                   /* pa: [2N] */
    molt_router_stats local, global;
} molt_moe_site;

/* xattn.c: the projector and the xattn module over batch b's feature tokens
 * (positions 1 … n_ft of every row of a->x, which they overwrite); the
 * backward reads and clears those rows of dx0 (the gradient of a->x's layer
 * 0), adds the prompt embeddings' gradient into dx0's prompt rows, and
 * accumulates the projector's, router's and experts' gradients. */
void molt_xattn_forward(molt_model *m, const molt_batch *b, int training);
void molt_xattn_backward(molt_model *m, const molt_batch *b, float *dx0);

/* moe_block.c */
int molt_moe_site_create(molt_moe_site **out, molt_model *m, int layer, int slot, int T_cap);
void molt_moe_site_free(molt_moe_site *s);
/* Switch a site between alltoall and replicate (expert parallelism only);
 * reallocates its exchange buffers (setup time, not per step). */
int molt_moe_site_set_mode(molt_model *m, molt_moe_site *s, int mode);
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
/* xattn: out[Ntok,d] = sum_e w_e E_e(xv) with w routed from xr (writes);
 * backward accumulates dxr (router input) and dxv (expert input). */
void molt_moe_xattn_forward(molt_model *m, molt_moe_site *s, float *out, const float *xr,
                            const float *xv, int Ntok, int training);
void molt_moe_xattn_backward(molt_model *m, molt_moe_site *s, float *dxr, float *dxv,
                             const float *dout, const float *xr, int Ntok);
#endif
