/* sgemm_rate.c — the OpenBLAS sgemm rate launch/bench compares molt against
 * (DESIGN §12). Times C = A·B on square float32 matrices (n = 1024 and 2048 by
 * default, or the sizes given as arguments), best of several repetitions per
 * size, with whatever thread count OPENBLAS_NUM_THREADS sets, and prints one
 * number: the best rate seen, in GFLOP/s (2·n³ flops per product).
 *
 *   usage: sgemm_rate [n ...]      (n between 64 and 8192)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best GFLOP/s over reps products of size n (one untimed warm-up first). */
static double rate(int n) {
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "sgemm_rate: out of memory for n=%d\n", n);
        exit(1);
    }
    unsigned s = 12345u;
    for (size_t i = 0; i < nn; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        s = s * 1664525u + 1013904223u;
        b[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        c[i] = 0.0f;
    }
    double flops = 2.0 * (double)n * (double)n * (double)n;
    /* Aim for about 0.5 s per size after the warm-up, 3..20 repetitions. */
    double t0 = now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double first = now_s() - t0;
    int reps = first > 0.0 ? (int)(0.5 / first) : 20;
    if (reps < 3) reps = 3;
    if (reps > 20) reps = 20;
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now_s() - t0;
        if (dt > 0.0 && flops / dt > best) best = flops / dt;
    }
    volatile float sink = c[nn / 2];
    (void)sink;
    free(a);
    free(b);
    free(c);
    return best * 1e-9;
}

int main(int argc, char **argv) {
    int sizes[16] = {1024, 2048};
    int nsizes = 2;
    if (argc > 1) {
        nsizes = 0;
        for (int i = 1; i < argc && nsizes < 16; i++) {
            char *end = NULL;
            long n = strtol(argv[i], &end, 10);
            if (!end || *end || n < 64 || n > 8192) {
                fprintf(stderr, "sgemm_rate: bad size '%s' (want an integer 64..8192)\n", argv[i]);
                return 2;
            }
            sizes[nsizes++] = (int)n;
        }
    }
    double best = 0.0;
    for (int i = 0; i < nsizes; i++) {
        double g = rate(sizes[i]);
        if (g > best) best = g;
    }
    printf("%.2f\n", best);
    return 0;
}
