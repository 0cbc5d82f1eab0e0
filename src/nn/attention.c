/* attention.c — RoPE and causal grouped-query attention (include/molt/nn.h).
 * Scores and weighted sums are GEMMs per (sequence, head); softmax in fp32 with
 * the row maximum subtracted. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "molt/nn.h"

void rope_tables(float *cos_t, float *sin_t, int T, int hd, double theta) {
    int half = hd / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            /* inv_freq_i = theta^(-2i/hd), computed as Hugging Face does in fp32
             * would differ in the last bit; double keeps it layout-stable. */
            double ang = (double)t * pow(theta, -2.0 * i / hd);
            cos_t[t * half + i] = (float)cos(ang);
            sin_t[t * half + i] = (float)sin(ang);
        }
}

/* x' = x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1]; sign = -1 undoes it. */
static void rope_apply(float *x, const float *cos_t, const float *sin_t, int N, int T, int nh,
                       int hd, float sign) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (n % T) * half, *s = sin_t + (n % T) * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (long)n * nh * hd + h * hd;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + half] = b * c[i] + a * si;
            }
        }
    }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T, int nh, int hd) {
    rope_apply(x, cos_t, sin_t, N, T, nh, hd, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T, int nh, int hd) {
    /* The rotation is orthogonal: its transpose is the rotation by -angle. */
    rope_apply(dx, cos_t, sin_t, N, T, nh, hd, -1.0f);
}

void attention_forward(float *out, float *P, const float *q, const float *k, const float *v, int B,
                       int T, int nh, int nkv, int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    const int qs = nh * hd, ks = nkv * hd, group = nh / nkv;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            const float *qb = q + (long)b * T * qs + h * hd;
            const float *kb = k + (long)b * T * ks + (h / group) * hd;
            const float *vb = v + (long)b * T * ks + (h / group) * hd;
            float *S = P + ((long)b * nh + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, qb, qs, kb, ks,
                        0.0f, S, T);
            for (int t = 0; t < T; t++) {
                float *row = S + (long)t * T;
                float mx = row[0];
                for (int s = 1; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
                float sum = 0;
                for (int s = 0; s <= t; s++) {
                    row[s] = expf(row[s] - mx);
                    sum += row[s];
                }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) row[s] *= inv;
                for (int s = t + 1; s < T; s++) row[s] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, S, T, vb, ks,
                        0.0f, out + (long)b * T * qs + h * hd, qs);
        }
}

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *P, const float *q, const float *k, const float *v, int B, int T,
                        int nh, int nkv, int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    const int qs = nh * hd, ks = nkv * hd, group = nh / nkv;
    float *dS = scratch;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            const float *Pb = P + ((long)b * nh + h) * T * T;
            const float *dob = dout + (long)b * T * qs + h * hd;
            const float *qb = q + (long)b * T * qs + h * hd;
            const long kvoff = (long)b * T * ks + (h / group) * hd;
            /* dV += P^T dO ; dP = dO V^T */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, Pb, T, dob, qs,
                        1.0f, dv + kvoff, ks);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dob, qs,
                        v + kvoff, ks, 0.0f, dS, T);
            /* softmax backward: dS = P (dP - rowsum(P dP)), causal part only */
            for (int t = 0; t < T; t++) {
                float *row = dS + (long)t * T;
                const float *pr = Pb + (long)t * T;
                float dot = 0;
                for (int s = 0; s <= t; s++) dot += pr[s] * row[s];
                for (int s = 0; s <= t; s++) row[s] = pr[s] * (row[s] - dot);
                for (int s = t + 1; s < T; s++) row[s] = 0.0f;
            }
            /* dQ = scale dS K ; dK += scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dS, T,
                        k + kvoff, ks, 0.0f, dq + (long)b * T * qs + h * hd, qs);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dS, T, qb, qs,
                        1.0f, dk + kvoff, ks);
        }
}
