/* lora_init.c — lora.init = svd (PiSSA-style, DESIGN §6): adapters start
 * from the principal singular triplets of the base weight they adapt, and
 * the base is corrected so that the model's output is unchanged at step 0.
 *
 * For a projection W (out × in) with shared LoRA of rank r: W = U S Vᵀ
 * (molt_svd_dist over every rank of the job: ScaLAPACK), A = √(S_r/s) V_rᵀ,
 * B = U_r √(S_r/s) with s = lora.alpha / r, so s·B A = U_r S_r V_rᵀ, and
 * W ← W − s·B A. For a plugin site with N LoRA experts, expert e takes the
 * triplets e·r … (e+1)·r − 1 and the router starts at zero: every token is
 * then routed alike, with the weights c_e the router gives a zero logit row,
 * and W ← W − Σ_e c_e s B_e A_e keeps the output exact. Each rank sets the
 * experts it holds; the correction uses all of them (every rank has S, U, V). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/linalg.h"
#include "molt/model.h"
#include "molt/router.h"

static float *find_w(molt_model *m, const char *path) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].path, path)) return m->params[i].w;
    return NULL;
}

/* Slice j0 … j0+r-1 into A (r×in) and B (out×r), scaled for s. */
static void set_pair(float *A, float *B, const double *S, const double *U, const double *VT, int k,
                     int j0, int r, int in, int out, double s) {
    for (int j = 0; j < r; j++) {
        double f = sqrt(S[j0 + j] / s);
        if (A)
            for (int c = 0; c < in; c++)
                A[(long)j * in + c] = (float)(f * VT[(long)(j0 + j) * in + c]);
        if (B)
            for (int o = 0; o < out; o++)
                B[(long)o * r + j] = (float)(U[(long)o * k + j0 + j] * f);
    }
}

/* One projection: `n` adapters (1 shared, or N experts) of rank r. */
static int init_projection(molt_model *m, MPI_Comm comm, int l, int p, int n, const double *c) {
    int rc = MOLT_OK, in, out, r = m->dims.r, k = n * r;
    const molt_dims *d = &m->dims;
    double *S = NULL, *U = NULL, *VT = NULL;
    char path[256], module[96];
    molt_proj_shape(d, p, &in, &out);
    snprintf(module, sizeof module, "model.layers.%d.%s.%s", l,
             p >= MOLT_PROJ_GATE ? "mlp" : "self_attn", molt_proj_names[p]);
    snprintf(path, sizeof path, "base/%s.weight", module);
    float *W = find_w(m, path);
    if (!W) MOLT_FAIL(MOLT_ERR_INTERNAL, "lora.init = svd: no %s", path);
    if (k > (in < out ? in : out))
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "lora.init = svd: %s needs %d x r = %d singular triplets, more "
                  "than min(%d, %d)",
                  module, n, k, out, in);
    MOLT_ALLOC(S, k);
    MOLT_ALLOC(U, (long)out * k);
    MOLT_ALLOC(VT, (long)k * in);
    MOLT_TRY(molt_svd_dist(comm, W, out, in, k, S, U, VT));
    const double s = d->lora_scale;
    for (int e = 0; e < n; e++) {
        if (n == 1 && c == NULL)
            snprintf(path, sizeof path, "adapters/%s/shared/lora_", module);
        else
            snprintf(path, sizeof path, "adapters/%s/expert_%03d/lora_", module, e);
        char pa[300], pb[300];
        snprintf(pa, sizeof pa, "%sA", path), snprintf(pb, sizeof pb, "%sB", path);
        set_pair(find_w(m, pa), find_w(m, pb), S, U, VT, k, e * r, r, in, out,
                 s); /* NULL: not held */
        /* W -= c_e * U_e S_e V_eᵀ (s B A of this slice), in double per entry */
        double ce = c ? c[e] : 1.0;
        if (ce == 0) continue;
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                double acc = 0;
                for (int j = e * r; j < (e + 1) * r; j++)
                    acc += U[(long)o * k + j] * S[j] * VT[(long)j * in + i];
                W[(long)o * in + i] -= (float)(ce * acc);
            }
    }
done:
    free(S), free(U), free(VT);
    return rc;
}

int molt_lora_init_svd(molt_model *m, MPI_Comm comm) {
    int rc = MOLT_OK;
    const molt_dims *d = &m->dims;
    char path[256];
    double *c = NULL;
    float *z = NULL, *pr = NULL, *w = NULL;
    uint8_t *sel = NULL;
    if (d->placement == MOLT_PLACE_FUSED_MLP || d->placement == MOLT_PLACE_FFN)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "lora.init = svd keeps the output only for shared LoRA and "
                  "plugin experts, not moe.placement = %s",
                  d->placement == MOLT_PLACE_FFN ? "ffn" : "fused_mlp");
    for (int l = 0; l < d->L; l++)
        for (int p = 0; p < MOLT_NPROJ; p++) {
            char module[96];
            snprintf(module, sizeof module, "model.layers.%d.%s.%s", l,
                     p >= MOLT_PROJ_GATE ? "mlp" : "self_attn", molt_proj_names[p]);
            snprintf(path, sizeof path, "routers/%s/weight", module);
            float *R = find_w(m, path);
            if (R) { /* plugin experts: zero router, c = its weights for a zero row */
                int N = d->n_exp[l], in, out;
                molt_proj_shape(d, p, &in, &out);
                memset(R, 0, sizeof(float) * (size_t)N * in);
                MOLT_ALLOC(c, N);
                MOLT_ALLOC(z, N);
                MOLT_ALLOC(pr, N);
                MOLT_ALLOC(w, N);
                MOLT_ALLOC(sel, N);
                molt_router_cfg rcfg = d->router;
                rcfg.N = N;
                if (molt_router_forward(&rcfg, z, 1, pr, w, sel, NULL, NULL) < 0)
                    MOLT_FAIL(MOLT_ERR_INTERNAL, "lora.init = svd: the router of %s failed",
                              module);
                for (int e = 0; e < N; e++)
                    c[e] = sel[e] ? w[e] : 0.0;
                MOLT_TRY(init_projection(m, comm, l, p, N, c));
                free(c), free(z), free(pr), free(w), free(sel);
                c = NULL, z = pr = w = NULL, sel = NULL;
                continue;
            }
            snprintf(path, sizeof path, "adapters/%s/shared/lora_A", module);
            if (find_w(m, path)) MOLT_TRY(init_projection(m, comm, l, p, 1, NULL));
        }
done:
    free(c), free(z), free(pr), free(w), free(sel);
    return rc;
}
