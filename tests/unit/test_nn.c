/* test_nn.c — every layer's backward against central finite differences of its
 * forward. Each check uses L = sum(R ⊙ y) for a fixed random R, so dL/dy = R.
 * fp32 kernels, h = 1e-2 on inputs of unit scale: the stated tolerance is
 * ||g_fd - g|| / ||g|| <= 1e-2 over up to 96 sampled coordinates (the fp32
 * rounding of the differences is ~1e-4 of that). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "molt/nn.h"
#include "molt/rng.h"
#include "testutil.h"

#define FD_TOL 1e-2

typedef struct {
    int kind;
    int N, in, out, d, B, T, nh, nkv, hd, r, V;
    float *x, *W, *w, *y, *R, *aux, *aux2, *q, *k, *v, *A, *Bm, *u, *cos_t, *sin_t;
    int32_t *tok;
} op_ctx;

static float *rnd(long n, float s, uint32_t id) {
    float *p = malloc(sizeof(float) * (size_t)n);
    molt_rng r;
    molt_rng_init(&r, 99, MOLT_RNG_TEST, id, 0, 0);
    for (long i = 0; i < n; i++) p[i] = s * molt_rng_normal(&r);
    return p;
}

static double dot(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Check analytic gradient g of scalar f w.r.t. p (n entries). */
static double fd_rel_err(double (*f)(op_ctx *), op_ctx *c, float *p, const float *g, long n) {
    const float h = 1e-2f;
    double num = 0, den = 0;
    long stride = n > 96 ? n / 96 : 1;
    for (long i = 0; i < n; i += stride) {
        float save = p[i];
        p[i] = save + h;
        double lp = f(c);
        p[i] = save - h;
        double lm = f(c);
        p[i] = save;
        double fd = (lp - lm) / (2.0 * h);
        num += (fd - g[i]) * (fd - g[i]);
        den += (double)g[i] * g[i];
    }
    return sqrt(num / (den > 1e-30 ? den : 1e-30));
}

/* ---- linear ---- */
static double linear_loss(op_ctx *c) {
    linear_forward(c->y, c->x, c->W, c->N, c->in, c->out, 0);
    return dot(c->y, c->R, (long)c->N * c->out);
}
static void test_linear(void) {
    op_ctx c = {.N = 6, .in = 5, .out = 7};
    c.x = rnd(30, 1, 1), c.W = rnd(35, 1, 2), c.R = rnd(42, 1, 3), c.y = calloc(42, 4);
    float *dx = calloc(30, 4), *dW = calloc(35, 4);
    linear_backward(dx, dW, c.R, c.x, c.W, c.N, c.in, c.out);
    CU_ASSERT(fd_rel_err(linear_loss, &c, c.x, dx, 30) < FD_TOL);
    CU_ASSERT(fd_rel_err(linear_loss, &c, c.W, dW, 35) < FD_TOL);
    free(c.x), free(c.W), free(c.R), free(c.y), free(dx), free(dW);
}

/* ---- rmsnorm ---- */
static double rms_loss(op_ctx *c) {
    rmsnorm_forward(c->y, c->aux, c->x, c->w, c->N, c->d, 1e-5f);
    return dot(c->y, c->R, (long)c->N * c->d);
}
static void test_rmsnorm(void) {
    op_ctx c = {.N = 4, .d = 16};
    c.x = rnd(64, 1, 4), c.w = rnd(16, 1, 5), c.R = rnd(64, 1, 6), c.y = calloc(64, 4);
    c.aux = calloc(4, 4);
    float *dx = calloc(64, 4), *dw = calloc(16, 4);
    rms_loss(&c);
    rmsnorm_backward(dx, dw, c.R, c.x, c.w, c.aux, c.N, c.d);
    CU_ASSERT(fd_rel_err(rms_loss, &c, c.x, dx, 64) < FD_TOL);
    CU_ASSERT(fd_rel_err(rms_loss, &c, c.w, dw, 16) < FD_TOL);
    /* forward value: unit weight gives rows of mean square ~1 */
    for (int i = 0; i < 16; i++) c.w[i] = 1;
    rms_loss(&c);
    CU_ASSERT(fabs(dot(c.y, c.y, 16) / 16 - 1.0) < 1e-3);
    free(c.x), free(c.w), free(c.R), free(c.y), free(c.aux), free(dx), free(dw);
}

/* ---- embedding ---- */
static double emb_loss(op_ctx *c) {
    embedding_forward(c->y, c->tok, c->W, c->N, c->d);
    return dot(c->y, c->R, (long)c->N * c->d);
}
static void test_embedding(void) {
    op_ctx c = {.N = 5, .d = 3, .V = 4};
    int32_t tok[5] = {1, 3, 1, 0, 2};
    c.tok = tok, c.W = rnd(12, 1, 7), c.R = rnd(15, 1, 8), c.y = calloc(15, 4);
    float *dE = calloc(12, 4);
    embedding_backward(dE, c.R, tok, c.N, c.d);
    CU_ASSERT(fd_rel_err(emb_loss, &c, c.W, dE, 12) < FD_TOL);
    /* token 1 appears twice: its gradient is the sum of both rows */
    CU_ASSERT(fabsf(dE[3] - (c.R[0] + c.R[6])) < 1e-6f);
    free(c.W), free(c.R), free(c.y), free(dE);
}

/* ---- rope ---- */
static double rope_loss(op_ctx *c) {
    long n = (long)c->N * c->nh * c->hd;
    memcpy(c->y, c->x, sizeof(float) * n);
    rope_forward(c->y, c->cos_t, c->sin_t, c->N, c->T, c->nh, c->hd);
    return dot(c->y, c->R, n);
}
static void test_rope(void) {
    op_ctx c = {.B = 2, .T = 5, .nh = 2, .hd = 8};
    c.N = c.B * c.T;
    long n = (long)c.N * c.nh * c.hd;
    c.x = rnd(n, 1, 9), c.R = rnd(n, 1, 10), c.y = calloc(n, 4);
    c.cos_t = calloc(c.T * 4, 4), c.sin_t = calloc(c.T * 4, 4);
    rope_tables(c.cos_t, c.sin_t, c.T, c.hd, 10000.0);
    float *dx = malloc(sizeof(float) * n);
    memcpy(dx, c.R, sizeof(float) * n);
    rope_backward(dx, c.cos_t, c.sin_t, c.N, c.T, c.nh, c.hd);
    CU_ASSERT(fd_rel_err(rope_loss, &c, c.x, dx, n) < FD_TOL);
    /* position 0 is the identity; the rotation keeps norms */
    rope_loss(&c);
    CU_ASSERT(fabsf(c.y[0] - c.x[0]) < 1e-7f);
    CU_ASSERT(fabs(dot(c.y, c.y, n) - dot(c.x, c.x, n)) < 1e-3 * dot(c.x, c.x, n));
    free(c.x), free(c.R), free(c.y), free(c.cos_t), free(c.sin_t), free(dx);
}

/* ---- attention ---- */
static double att_loss(op_ctx *c) {
    attention_forward(c->y, c->aux, c->q, c->k, c->v, c->B, c->T, c->nh, c->nkv, c->hd);
    return dot(c->y, c->R, (long)c->N * c->nh * c->hd);
}
static void test_attention(void) {
    op_ctx c = {.B = 2, .T = 6, .nh = 4, .nkv = 2, .hd = 4};
    c.N = c.B * c.T;
    long nq = (long)c.N * c.nh * c.hd, nk = (long)c.N * c.nkv * c.hd;
    c.q = rnd(nq, 1, 11), c.k = rnd(nk, 1, 12), c.v = rnd(nk, 1, 13), c.R = rnd(nq, 1, 14);
    c.y = calloc(nq, 4), c.aux = calloc((long)c.B * c.nh * c.T * c.T, 4);
    float *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4);
    float *scratch = calloc(c.T * c.T, 4);
    att_loss(&c);
    attention_backward(dq, dk, dv, scratch, c.R, c.aux, c.q, c.k, c.v, c.B, c.T, c.nh, c.nkv, c.hd);
    CU_ASSERT(fd_rel_err(att_loss, &c, c.q, dq, nq) < FD_TOL);
    CU_ASSERT(fd_rel_err(att_loss, &c, c.k, dk, nk) < FD_TOL);
    CU_ASSERT(fd_rel_err(att_loss, &c, c.v, dv, nk) < FD_TOL);
    /* causality: the first position of each sequence attends to itself only */
    CU_ASSERT(fabsf(c.y[0] - c.v[0]) < 1e-6f);
    free(c.q), free(c.k), free(c.v), free(c.R), free(c.y), free(c.aux);
    free(dq), free(dk), free(dv), free(scratch);
}

/* ---- swiglu ---- */
static double swiglu_loss(op_ctx *c) {
    swiglu_forward(c->y, c->x, c->aux, c->N);
    return dot(c->y, c->R, c->N);
}
static void test_swiglu(void) {
    op_ctx c = {.N = 40};
    c.x = rnd(40, 2, 15), c.aux = rnd(40, 1, 16), c.R = rnd(40, 1, 17), c.y = calloc(40, 4);
    float *dg = calloc(40, 4), *du = calloc(40, 4);
    swiglu_backward(dg, du, c.R, c.x, c.aux, c.N);
    CU_ASSERT(fd_rel_err(swiglu_loss, &c, c.x, dg, 40) < FD_TOL);
    CU_ASSERT(fd_rel_err(swiglu_loss, &c, c.aux, du, 40) < FD_TOL);
    free(c.x), free(c.aux), free(c.R), free(c.y), free(dg), free(du);
}

/* ---- lora ---- */
static double lora_loss(op_ctx *c) {
    memset(c->y, 0, sizeof(float) * c->N * c->out);
    lora_forward(c->y, c->u, c->x, c->A, c->Bm, c->N, c->in, c->out, c->r, 1.5f);
    return dot(c->y, c->R, (long)c->N * c->out);
}
static void test_lora(void) {
    op_ctx c = {.N = 5, .in = 6, .out = 7, .r = 3};
    c.x = rnd(30, 1, 18), c.A = rnd(18, 1, 19), c.Bm = rnd(21, 1, 20), c.R = rnd(35, 1, 21);
    c.y = calloc(35, 4), c.u = calloc(15, 4);
    float *dx = calloc(30, 4), *dA = calloc(18, 4), *dB = calloc(21, 4), *du = calloc(15, 4);
    lora_loss(&c);
    lora_backward(dx, dA, dB, du, c.R, c.x, c.u, c.A, c.Bm, c.N, c.in, c.out, c.r, 1.5f);
    CU_ASSERT(fd_rel_err(lora_loss, &c, c.x, dx, 30) < FD_TOL);
    CU_ASSERT(fd_rel_err(lora_loss, &c, c.A, dA, 18) < FD_TOL);
    CU_ASSERT(fd_rel_err(lora_loss, &c, c.Bm, dB, 21) < FD_TOL);
    free(c.x), free(c.A), free(c.Bm), free(c.R), free(c.y), free(c.u);
    free(dx), free(dA), free(dB), free(du);
}

/* ---- cross-entropy ---- */
static double ce_loss(op_ctx *c) {
    long cnt;
    return cross_entropy_forward(c->x, c->tok, c->N, c->V, &cnt);
}
static void test_cross_entropy(void) {
    op_ctx c = {.N = 4, .V = 9};
    int32_t t[4] = {3, -1, 8, 0};
    c.tok = t, c.x = rnd(36, 2, 22);
    float *dz = calloc(36, 4);
    cross_entropy_backward(dz, c.x, t, c.N, c.V, 1.0f);
    CU_ASSERT(fd_rel_err(ce_loss, &c, c.x, dz, 36) < FD_TOL);
    long cnt;
    cross_entropy_forward(c.x, t, c.N, c.V, &cnt);
    CU_ASSERT_EQUAL(cnt, 3);
    for (int i = 9; i < 18; i++) CU_ASSERT_EQUAL(dz[i], 0.0f); /* ignored row */
    /* uniform logits: loss = log V per counted row */
    memset(c.x, 0, 36 * 4);
    CU_ASSERT(fabs(ce_loss(&c) - 3 * log(9.0)) < 1e-5);
    free(c.x), free(dz);
}

int main(int argc, char **argv) {
    molt_test_case cases[] = {{"linear", test_linear},
                              {"rmsnorm", test_rmsnorm},
                              {"embedding", test_embedding},
                              {"rope", test_rope},
                              {"attention (GQA, causal)", test_attention},
                              {"swiglu", test_swiglu},
                              {"lora", test_lora},
                              {"cross-entropy", test_cross_entropy},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "nn finite differences", cases);
}
