/* xattn.c — Parrot's input path (DESIGN §4): feature tokens F [n_ft,
 * feat_dim] of each sample go through the projector (mlp2x_gelu)
 *     H_v = W2 gelu(W1 F + b1) + b2,
 * then, with moe.placement = xattn, through the MoE whose router sees a
 * cross-attention summary of the prompt embeddings H_t:
 *     a = softmax(H_v[0] H_t^T / sqrt(d)),  z = a H_t,  w = softmax(W_g z),
 *     out = sum_e w_e E_e(H_v) + moe_weight * H_v     (dense, no bias, no aux)
 * and `out` replaces the embeddings at positions 1 … n_ft. The router sees z
 * as the input of every feature token of its sample, so the experts travel
 * through the ordinary MoE site (moe_block.c: all-to-all under parallel.ep).
 * Without the MoE (moe.enable = false) out = H_v. */
#include <math.h>
#include <string.h>

#include "molt/err.h"
#include "molt/nn.h"
#include "nn/model_internal.h"

static molt_moe_site *xattn_site(const molt_model *m) {
    return m->dims.xattn ? m->sites[m->dims.L * MOLT_SITE_SLOTS + MOLT_SITE_MLP] : NULL;
}

static void add_bias(float *y, const float *bias, long n, int w) {
    for (long i = 0; i < n; i++)
        for (int j = 0; j < w; j++)
            y[i * w + j] += bias[j];
}

static void bias_grad(float *gb, const float *dy, long n, int w) {
    for (long i = 0; i < n; i++)
        for (int j = 0; j < w; j++)
            gb[j] += dy[i * w + j];
}

/* The prompt of row j: positions [*lo, *hi). */
static void prompt_span(const molt_model *m, const molt_batch *b, int j, int *lo, int *hi) {
    *lo = 1 + m->dims.n_ft;
    *hi = b->plen[j] < m->acts->T ? b->plen[j] : m->acts->T;
    if (*hi < *lo) *hi = *lo;
}

void molt_xattn_forward(molt_model *m, const molt_batch *b, int training) {
    const molt_dims *d = &m->dims;
    molt_acts *a = m->acts;
    const int T = a->T, D = d->d, nf = d->n_ft;
    int ns = b->n_seq;
    if (ns > 0 && (!b->feat || !b->plen || b->n_ft != nf || b->feat_dim != d->feat_dim)) {
        m->failed = MOLT_ERROR(MOLT_ERR_INPUT,
                               "model.projector needs feature tokens [%d, %d] in "
                               "every batch: this one has none (data.source?)",
                               nf, d->feat_dim);
        ns = 0; /* the exchange below still runs: the other ranks wait in it */
    }
    const long Nf = (long)ns * nf;
    if (Nf > 0) {
        linear_forward(a->fh1, b->feat, m->w.proj_w1, (int)Nf, d->feat_dim, D, 0);
        add_bias(a->fh1, m->w.proj_b1, Nf, D);
        for (long i = 0; i < Nf * D; i++)
            a->fg1[i] = 0.5f * a->fh1[i] * (1.0f + erff(a->fh1[i] * 0.70710678118654752f));
        linear_forward(a->fhv, a->fg1, m->w.proj_w2, (int)Nf, D, D, 0);
        add_bias(a->fhv, m->w.proj_b2, Nf, D);
    }
    molt_moe_site *site = xattn_site(m);
    const float *out = a->fhv;
    if (site) {
        const float inv = 1.0f / sqrtf((float)D);
        for (int j = 0; j < ns; j++) {
            const float *q = a->fhv + (long)j * nf * D;
            float *att = a->fatt + (long)j * T, *z = a->fz + (long)j * D;
            int lo, hi;
            prompt_span(m, b, j, &lo, &hi);
            float mx = -INFINITY, sum = 0;
            for (int i = lo; i < hi; i++) {
                const float *h = a->x + ((long)j * T + i) * D;
                float s = 0;
                for (int c = 0; c < D; c++)
                    s += q[c] * h[c];
                att[i] = s * inv;
                if (att[i] > mx) mx = att[i];
            }
            for (int i = lo; i < hi; i++)
                sum += att[i] = expf(att[i] - mx);
            memset(z, 0, sizeof(float) * D);
            for (int i = lo; i < hi; i++) {
                const float *h = a->x + ((long)j * T + i) * D;
                att[i] /= sum;
                for (int c = 0; c < D; c++)
                    z[c] += att[i] * h[c];
            }
            for (int t = 0; t < nf; t++)
                memcpy(a->fxr + ((long)j * nf + t) * D, z, sizeof(float) * D);
        }
        molt_moe_xattn_forward(m, site, a->fxo, a->fxr, a->fhv, (int)Nf, training);
        for (long i = 0; i < Nf * D; i++)
            a->fxo[i] += d->moe_weight * a->fhv[i];
        out = a->fxo;
    }
    for (int j = 0; j < ns; j++)
        memcpy(a->x + ((long)j * T + 1) * D, out + (long)j * nf * D, sizeof(float) * nf * D);
}

void molt_xattn_backward(molt_model *m, const molt_batch *b, float *dx0) {
    const molt_dims *d = &m->dims;
    molt_acts *a = m->acts;
    const int T = a->T, D = d->d, nf = d->n_ft;
    int ns = a->last_n_seq;
    if (ns > 0 && (!b->feat || !b->plen || b->n_ft != nf)) ns = 0; /* reported by the forward */
    const long Nf = (long)ns * nf;
    float *dout = a->fdg, *dhv = a->fdhv;
    for (int j = 0; j < ns; j++) {
        float *rows = dx0 + ((long)j * T + 1) * D;
        memcpy(dout + (long)j * nf * D, rows, sizeof(float) * nf * D);
        memset(rows, 0, sizeof(float) * nf * D); /* the span's <pad> ids: no embedding gradient */
    }
    molt_moe_site *site = xattn_site(m);
    if (site) {
        const float inv = 1.0f / sqrtf((float)D);
        for (long i = 0; i < Nf * D; i++)
            dhv[i] = d->moe_weight * dout[i];
        memset(a->fdxr, 0, sizeof(float) * (size_t)Nf * D);
        molt_moe_xattn_backward(m, site, a->fdxr, dhv, dout, a->fxr, (int)Nf);
        for (int j = 0; j < ns; j++) {
            const float *q = a->fhv + (long)j * nf * D, *att = a->fatt + (long)j * T;
            float *dz = a->fz + (long)j * D; /* z is not needed any more: its gradient */
            int lo, hi;
            prompt_span(m, b, j, &lo, &hi);
            memset(dz, 0, sizeof(float) * D);
            for (int t = 0; t < nf; t++)
                for (int c = 0; c < D; c++)
                    dz[c] += a->fdxr[((long)j * nf + t) * D + c];
            /* z = sum_i a_i h_i: dh_i += a_i dz, da_i = dz . h_i; softmax backward */
            float dot = 0, *dq = dhv + (long)j * nf * D;
            for (int i = lo; i < hi; i++) {
                const float *h = a->x + ((long)j * T + i) * D;
                float s = 0;
                for (int c = 0; c < D; c++)
                    s += dz[c] * h[c];
                dot += att[i] * s;
            }
            for (int i = lo; i < hi; i++) {
                const float *h = a->x + ((long)j * T + i) * D;
                float *dh = dx0 + ((long)j * T + i) * D, da = 0;
                for (int c = 0; c < D; c++)
                    da += dz[c] * h[c];
                float ds = att[i] * (da - dot) * inv;
                for (int c = 0; c < D; c++) {
                    dh[c] += att[i] * dz[c] + ds * q[c];
                    dq[c] += ds * h[c];
                }
            }
        }
    } else {
        memcpy(dhv, dout, sizeof(float) * (size_t)Nf * D);
    }
    /* the projector */
    float *dg = a->fdg;
    bias_grad(m->g.proj_b2, dhv, Nf, D);
    memset(dg, 0, sizeof(float) * (size_t)Nf * D);
    linear_backward(dg, m->g.proj_w2, dhv, a->fg1, m->w.proj_w2, (int)Nf, D, D);
    const float c0 = 0.3989422804014327f; /* 1/sqrt(2 pi) */
    for (long i = 0; i < Nf * D; i++) {
        float x = a->fh1[i];
        dg[i] *= 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * c0 * expf(-0.5f * x * x);
    }
    bias_grad(m->g.proj_b1, dg, Nf, D);
    memset(a->fdfeat, 0, sizeof(float) * (size_t)Nf * d->feat_dim);
    if (Nf > 0)
        linear_backward(a->fdfeat, m->g.proj_w1, dg, b->feat, m->w.proj_w1, (int)Nf, d->feat_dim,
                        D);
}
