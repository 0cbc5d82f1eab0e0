/* factorize.c — see include/molt/factorize.h. */
#include "molt/factorize.h"

#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/linalg.h"
#include "molt/rng.h"

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* perm from a cluster id per neuron: groups ordered by their smallest neuron,
 * neurons ascending inside. slot and fill: N ints of scratch each. */
static void perm_from_assign(const int *assign, int F, int N, int *slot, int *fill, int *perm) {
    int fe = F / N, next = 0;
    for (int g = 0; g < N; g++)
        slot[g] = -1, fill[g] = 0;
    for (int i = 0; i < F; i++) /* neurons ascending: first sight orders groups */
        if (slot[assign[i]] < 0) slot[assign[i]] = next++;
    for (int i = 0; i < F; i++) {
        int s = slot[assign[i]];
        perm[s * fe + fill[s]++] = i;
    }
}

/* Neuron embeddings U_r diag(S_r) of [gate | up], then balanced k-means. */
static int cluster(MPI_Comm comm, const molt_factor_opts *o, const float *gate, const float *up,
                   int F, int d, int N, int *assign) {
    int rc = MOLT_OK, r = o->svd_rank;
    if (r <= 0) r = 64 < 2 * d ? 64 : 2 * d;
    if (r > F) r = F;
    if (r > 2 * d) r = 2 * d;
    float *X = NULL, *emb = NULL;
    double *S = NULL, *U = NULL, *VT = NULL;
    MOLT_ALLOC(X, (size_t)F * 2 * d);
    MOLT_ALLOC(emb, (size_t)F * r);
    MOLT_ALLOC(S, r);
    MOLT_ALLOC(U, (size_t)F * r);
    MOLT_ALLOC(VT, (size_t)r * 2 * d);
    for (int i = 0; i < F; i++) {
        memcpy(X + (size_t)i * 2 * d, gate + (size_t)i * d, sizeof(float) * (size_t)d);
        memcpy(X + (size_t)i * 2 * d + d, up + (size_t)i * d, sizeof(float) * (size_t)d);
    }
    MOLT_TRY(molt_svd_dist(comm, X, F, 2 * d, r, S, U, VT));
    for (int i = 0; i < F; i++)
        for (int j = 0; j < r; j++)
            emb[(size_t)i * r + j] = (float)(U[(size_t)i * r + j] * S[j]);
    MOLT_TRY(molt_kmeans_balanced(emb, F, r, N, o->seed, o->iters, assign));
done:
    free(X), free(emb), free(S), free(U), free(VT);
    return rc;
}

int molt_factor_groups(MPI_Comm comm, const molt_factor_opts *o, int layer, const float *gate,
                       const float *up, int F, int d, int N, int *perm) {
    int rc = MOLT_OK, *assign = NULL, *scratch = NULL;
    if (N < 1 || F % N != 0)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "molt factorize: layer %d: %d FFN neurons do not split into %d equal experts",
                  layer, F, N);
    for (int i = 0; i < F; i++)
        perm[i] = i;
    if (o->method == MOLT_FACTOR_RANDOM) { /* Fisher-Yates, then ascending per group */
        molt_rng g;
        molt_rng_init(&g, o->seed, MOLT_RNG_FACTOR, (uint32_t)layer, 0, 0);
        for (int i = F - 1; i > 0; i--) {
            int j = (int)molt_rng_below(&g, (uint32_t)(i + 1)), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (int e = 0; e < N; e++)
            qsort(perm + e * (F / N), (size_t)(F / N), sizeof(int), cmp_int);
    } else if (o->method == MOLT_FACTOR_CLUSTER) {
        MOLT_ALLOC(assign, F);
        MOLT_ALLOC(scratch, 2 * N);
        MOLT_TRY(cluster(comm, o, gate, up, F, d, N, assign));
        perm_from_assign(assign, F, N, scratch, scratch + N, perm);
    }
done:
    free(assign);
    free(scratch);
    return rc;
}

void molt_factor_slice(const int *perm, int e, int F, int d, int N, const float *gate,
                       const float *up, const float *down, float *gate_e, float *up_e,
                       float *down_e) {
    const int fe = F / N;
    for (int j = 0; j < fe; j++) {
        int i = perm[e * fe + j];
        memcpy(gate_e + (size_t)j * d, gate + (size_t)i * d, sizeof(float) * (size_t)d);
        memcpy(up_e + (size_t)j * d, up + (size_t)i * d, sizeof(float) * (size_t)d);
        for (int row = 0; row < d; row++)
            down_e[(size_t)row * fe + j] = down[(size_t)row * F + i];
    }
}
