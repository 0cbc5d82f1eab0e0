/* nn.h — the layers of a LLaMA-style decoder as forward/backward pairs over
 * fp32 buffers (llm.c style). Shapes are in the comments; N = B·T rows (tokens)
 * of a micro-batch of B sequences of T positions. Matrices are [out, in]
 * row-major like Hugging Face. Backward functions ACCUMULATE (+=) into every
 * weight gradient and into dx unless the comment says "writes"; a NULL weight
 * gradient means the weight is frozen and gets none. */
#ifndef MOLT_NN_H
#define MOLT_NN_H
#include <stdint.h>

/* y[N,out] = x[N,in] W^T (accumulate=0 writes, 1 adds). */
void linear_forward(float *y, const float *x, const float *W, int N, int in, int out,
                    int accumulate);
/* dx[N,in] += dy W (dx may be NULL); dW[out,in] += dy^T x (dW may be NULL). */
void linear_backward(float *dx, float *dW, const float *dy, const float *x, const float *W, int N,
                     int in, int out);

/* y[N,d] = x * rstd * w, rstd[N] = 1/sqrt(mean(x^2) + eps) (writes y, rstd). */
void rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int d,
                     float eps);
/* dx[N,d] += ..., dw[d] += ... (dw may be NULL). */
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      const float *rstd, int N, int d);

/* x[N,d] = E[tok[n]] (writes). */
void embedding_forward(float *x, const int32_t *tok, const float *E, int N, int d);
/* dE[V,d] += scatter of dx by token. */
void embedding_backward(float *dE, const float *dx, const int32_t *tok, int N, int d);

/* RoPE tables for positions 0..T-1, head dim hd (even): cos/sin [T, hd/2],
 * angle = t * theta^(-2i/hd) (Hugging Face LLaMA "rotate_half" convention). */
void rope_tables(float *cos_t, float *sin_t, int T, int hd, double theta);
/* In place on x[B*T, nh*hd]: row n has position n % T. Backward applies the
 * inverse rotation to the gradient (in place). */
void rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T, int nh, int hd);
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T, int nh, int hd);

/* Causal grouped-query attention per sequence. q[N, nh*hd], k,v[N, nkv*hd];
 * query head h reads kv head h / (nh/nkv). Writes out[N, nh*hd] and the
 * probabilities P[B, nh, T, T] (zeros above the diagonal) kept for backward. */
void attention_forward(float *out, float *P, const float *q, const float *k, const float *v, int B,
                       int T, int nh, int nkv, int hd);
/* Writes dq; accumulates dk, dv (zero them first). scratch: T*T floats. */
void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *P, const float *q, const float *k, const float *v, int B, int T,
                        int nh, int nkv, int hd);

/* h[n] = silu(g[n]) * u[n] (writes). Backward writes dg, du. */
void swiglu_forward(float *h, const float *g, const float *u, long n);
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, long n);

/* LoRA branch: u[N,r] = xd A^T (writes), y[N,out] += scale * u B^T.
 * xd is the (dropped-out) input, A [r,in], B [out,r]. */
void lora_forward(float *y, float *u, const float *xd, const float *A, const float *B, int N,
                  int in, int out, int r, float scale);
/* dxd[N,in] += (scale dy B) A, dA += (scale dy B)^T xd, dB += scale dy^T u
 * (dA, dB may be NULL; dxd may be NULL). du: N*r floats of scratch. */
void lora_backward(float *dxd, float *dA, float *dB, float *du, const float *dy, const float *xd,
                   const float *u, const float *A, const float *B, int N, int in, int out, int r,
                   float scale);

/* Cross-entropy over rows whose target != -1. Returns the summed loss (double);
 * *count = number of counted rows. */
double cross_entropy_forward(const float *logits, const int32_t *targets, int N, int V, long *count);
/* dlogits[N,V] = scale * (softmax(logits) - onehot) on counted rows, 0 elsewhere
 * (writes; dlogits may alias logits). */
void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N,
                            int V, float scale);

#endif
