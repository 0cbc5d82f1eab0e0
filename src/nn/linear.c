/* linear.c — dense projections through cblas (see include/molt/nn.h). */
#include <cblas.h>

#include "molt/nn.h"

void linear_forward(float *y, const float *x, const float *W, int N, int in, int out,
                    int accumulate) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, W, in,
                accumulate ? 1.0f : 0.0f, y, out);
}

void linear_backward(float *dx, float *dW, const float *dy, const float *x, const float *W, int N,
                     int in, int out) {
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, W, in,
                    1.0f, dx, in);
    if (dW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in,
                    1.0f, dW, in);
}

void lora_forward(float *y, float *u, const float *xd, const float *A, const float *B, int N,
                  int in, int out, int r, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, xd, in, A, in, 0.0f, u, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, r, scale, u, r, B, r, 1.0f, y, out);
}

void lora_backward(float *dxd, float *dA, float *dB, float *du, const float *dy, const float *xd,
                   const float *u, const float *A, const float *B, int N, int in, int out, int r,
                   float scale) {
    if (dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, scale, dy, out, u, r, 1.0f,
                    dB, r);
    /* du = scale dy B : [N,r] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, scale, dy, out, B, r, 0.0f,
                du, r);
    if (dA)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, du, r, xd, in, 1.0f,
                    dA, in);
    if (dxd)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, du, r, A, in, 1.0f,
                    dxd, in);
}
