/* pa.c — see include/molt/pa.h. */
#include "molt/pa.h"

#include <math.h>

#define PA_CLIP_LO 1e-7
#define PA_CLIP_HI (1.0 - 1e-7)

static double clip(double x) {
    return x < PA_CLIP_LO ? PA_CLIP_LO : x > PA_CLIP_HI ? PA_CLIP_HI : x;
}

/* Is expert e among the k lowest errors of row `ell` (ties: lower index)? */
static int in_label(const float *ell, int N, int k, int e) {
    int better = 0;
    for (int j = 0; j < N; j++)
        better += ell[j] < ell[e] || (ell[j] == ell[e] && j < e);
    return better < k;
}

molt_pa_values molt_pa_loss(const molt_pa_cfg *c, const float *z, const float *ell,
                            const uint8_t *sel, int T, int N, double tokens, double *scratch,
                            float *dz) {
    molt_pa_values v = {0, 0};
    const int k = c->k < 1 ? 1 : c->k > N ? N : c->k;
    /* softmax of the k-hot label: e/(k e + N - k) on the label, 1/(...) off it */
    const double den = k * exp(1.0) + (N - k), q_on = clip(exp(1.0) / den), q_off = clip(1.0 / den);
    const double pa_w = tokens > 0 ? c->pa_coef / tokens : 0;
    const double bal_w = tokens > 0 ? c->bal_coef / (tokens * N) : 0;
    for (int t = 0; t < T; t++) {
        const float *zt = z + (long)t * N, *lt = ell + (long)t * N;
        double mx = zt[0], sum = 0, *p = scratch, *g = scratch + N, gp = 0;
        for (int i = 1; i < N; i++)
            mx = zt[i] > mx ? zt[i] : mx;
        for (int i = 0; i < N; i++)
            sum += p[i] = exp((double)zt[i] - mx);
        for (int i = 0; i < N; i++) {
            p[i] /= sum;
            double P = clip(p[i]), Q = in_label(lt, N, k, i) ? q_on : q_off;
            v.pa += pa_w * P * log(P / Q);
            int inside = p[i] >= PA_CLIP_LO && p[i] <= PA_CLIP_HI;
            g[i] = inside ? pa_w * (log(P / Q) + 1.0) : 0.0;
            if (sel && sel[(long)t * N + i]) v.balance += bal_w * p[i], g[i] += bal_w;
        }
        for (int i = 0; i < N; i++)
            gp += g[i] * p[i];
        for (int i = 0; i < N; i++)
            dz[(long)t * N + i] += (float)(p[i] * (g[i] - gp));
    }
    return v;
}
