/* pointwise.c — RMSNorm, embedding, SwiGLU, cross-entropy (include/molt/nn.h).
 * Reductions accumulate in double so results do not depend on thread count. */
#include <math.h>
#include <string.h>

#include "molt/nn.h"

void rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int d,
                     float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (long)n * d;
        float *yr = y + (long)n * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
        float s = (float)(1.0 / sqrt(ss / d + (double)eps));
        rstd[n] = s;
        for (int i = 0; i < d; i++) yr[i] = xr[i] * s * w[i];
    }
}

void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      const float *rstd, int N, int d) {
    /* y = x s w, s = (mean x^2 + eps)^-1/2:
     * dx = s (dy w) - x s^3 mean(dy w x);  dw += dy x s. */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (long)n * d, *dyr = dy + (long)n * d;
        float *dxr = dx + (long)n * d;
        float s = rstd[n];
        double dot = 0;
        for (int i = 0; i < d; i++) dot += (double)dyr[i] * w[i] * xr[i];
        float c = (float)(dot / d) * s * s * s;
        for (int i = 0; i < d; i++) dxr[i] += s * dyr[i] * w[i] - c * xr[i];
    }
    if (dw)
        for (int n = 0; n < N; n++) {
            const float *xr = x + (long)n * d, *dyr = dy + (long)n * d;
            float s = rstd[n];
            for (int i = 0; i < d; i++) dw[i] += dyr[i] * xr[i] * s;
        }
}

void embedding_forward(float *x, const int32_t *tok, const float *E, int N, int d) {
    for (int n = 0; n < N; n++) memcpy(x + (long)n * d, E + (long)tok[n] * d, sizeof(float) * d);
}

void embedding_backward(float *dE, const float *dx, const int32_t *tok, int N, int d) {
    for (int n = 0; n < N; n++) {
        float *row = dE + (long)tok[n] * d;
        const float *g = dx + (long)n * d;
        for (int i = 0; i < d; i++) row[i] += g[i];
    }
}

static inline float sigmoidf(float z) {
    return 1.0f / (1.0f + expf(-z));
}

void swiglu_forward(float *h, const float *g, const float *u, long n) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) h[i] = g[i] * sigmoidf(g[i]) * u[i];
}

void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, long n) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        float s = sigmoidf(g[i]);
        float silu = g[i] * s;
        du[i] = dh[i] * silu;
        dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
}

double cross_entropy_forward(const float *logits, const int32_t *targets, int N, int V,
                             long *count) {
    double loss = 0;
    long cnt = 0;
#pragma omp parallel for schedule(static) reduction(+ : loss, cnt)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *z = logits + (long)n * V;
        float mx = z[0];
        for (int i = 1; i < V; i++) mx = z[i] > mx ? z[i] : mx;
        double se = 0;
        for (int i = 0; i < V; i++) se += exp((double)(z[i] - mx));
        loss += log(se) + mx - z[targets[n]];
        cnt++;
    }
    *count = cnt;
    return loss;
}

void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N,
                            int V, float scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *dz = dlogits + (long)n * V;
        const float *z = logits + (long)n * V;
        if (targets[n] < 0) {
            memset(dz, 0, sizeof(float) * V);
            continue;
        }
        float mx = z[0];
        for (int i = 1; i < V; i++) mx = z[i] > mx ? z[i] : mx;
        double se = 0;
        for (int i = 0; i < V; i++) se += exp((double)(z[i] - mx));
        float inv = (float)(1.0 / se);
        for (int i = 0; i < V; i++) dz[i] = scale * expf(z[i] - mx) * inv;
        dz[targets[n]] -= scale;
    }
}
