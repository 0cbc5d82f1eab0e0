/* kmeans.c — balanced k-means; see include/molt/linalg.h. */
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/linalg.h"
#include "molt/rng.h"

/* Exchange passes over all cluster pairs per round: each exchange lowers the
 * cost, so passes end on their own; the cap only bounds rounding loops. */
enum { KMEANS_MAX_PASSES = 100 };

typedef struct {
    double key; /* distance, or exchange gain */
    int i, j;   /* row, then centre (or slot in the cluster's member list) */
} kmeans_pair;

static int pair_cmp(const void *pa, const void *pb) {
    const kmeans_pair *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

static double sqdist(const float *x, const double *c, int d) {
    double s = 0;
    for (int t = 0; t < d; t++) {
        const double e = x[t] - c[t];
        s += e * e;
    }
    return s;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform53(molt_rng *r) {
    const uint64_t hi = molt_rng_u32(r) >> 5, lo = molt_rng_u32(r) >> 6;
    return (double)(hi * 67108864u + lo) / 9007199254740992.0;
}

/* k-means++: first centre uniform, each next one a row drawn with
 * probability proportional to its squared distance to the nearest chosen
 * centre; when every row sits on a centre (duplicates), the first row not yet
 * chosen. near[n] is scratch. */
static void kmeans_init(const float *X, int n, int d, int k, uint64_t seed, double *C, double *near,
                        unsigned char *chosen) {
    /* the initialisation purpose with b = n >= 1, c = k: weights use
     * (path hash, 0, 0) (src/nn/model.c), so no draw is shared with them */
    molt_rng r;
    molt_rng_init(&r, seed, MOLT_RNG_KMEANS, 0, (uint32_t)n, (uint32_t)k);
    int pick = (int)molt_rng_below(&r, (uint32_t)n);
    for (int c = 0; c < k; c++) {
        chosen[pick] = 1;
        for (int t = 0; t < d; t++)
            C[(size_t)c * d + t] = X[(size_t)pick * d + t];
        if (c + 1 == k) break;
        double total = 0;
        for (int i = 0; i < n; i++) {
            const double e = sqdist(X + (size_t)i * d, C + (size_t)c * d, d);
            if (c == 0 || e < near[i]) near[i] = e;
            total += near[i];
        }
        const double u = uniform53(&r) * total;
        double cum = 0;
        pick = -1;
        for (int i = 0; i < n && pick < 0; i++) {
            if (chosen[i] || near[i] <= 0) continue;
            cum += near[i];
            if (cum > u) pick = i;
        }
        for (int i = n - 1; i >= 0 && pick < 0 && total > 0; i--) /* rounding: last candidate */
            if (!chosen[i] && near[i] > 0) pick = i;
        for (int i = 0; i < n && pick < 0; i++)
            if (!chosen[i]) pick = i;
    }
}

/* Greedy capacity-constrained assignment: pairs by (distance, row, centre). */
static void assign_greedy(const double *D, int n, int k, int cap, kmeans_pair *pairs, int *fill,
                          int *assign) {
    for (int i = 0; i < n; i++)
        for (int c = 0; c < k; c++)
            pairs[(size_t)i * k + c] = (kmeans_pair){D[(size_t)i * k + c], i, c};
    qsort(pairs, (size_t)n * k, sizeof *pairs, pair_cmp);
    memset(fill, 0, (size_t)k * sizeof *fill);
    for (int i = 0; i < n; i++)
        assign[i] = -1;
    for (size_t p = 0; p < (size_t)n * k; p++) {
        const kmeans_pair q = pairs[p];
        if (assign[q.i] < 0 && fill[q.j] < cap) assign[q.i] = q.j, fill[q.j]++;
    }
}

/* The best exchange between clusters a and b: rows of a sorted by the gain
 * of moving to b, rows of b by the gain of moving to a; swapping the r-th
 * of each while the pair's gain is negative is optimal for this pair, as
 * the pair gains only grow with r. members[c] lists cluster c's cap rows.
 * Returns the number of rows swapped. */
static int exchange_pair(const double *D, int k, int cap, int a, int b, int *members, int *assign,
                         kmeans_pair *ga, kmeans_pair *gb) {
    int *ma = members + (size_t)a * cap, *mb = members + (size_t)b * cap;
    double min_a = 0, min_b = 0;
    for (int s = 0; s < cap; s++) {
        const int i = ma[s], j = mb[s];
        ga[s] = (kmeans_pair){D[(size_t)i * k + b] - D[(size_t)i * k + a], i, s};
        gb[s] = (kmeans_pair){D[(size_t)j * k + a] - D[(size_t)j * k + b], j, s};
        if (s == 0 || ga[s].key < min_a) min_a = ga[s].key;
        if (s == 0 || gb[s].key < min_b) min_b = gb[s].key;
    }
    if (!(min_a + min_b < 0)) return 0; /* no exchange helps: skip the sorts */
    qsort(ga, (size_t)cap, sizeof *ga, pair_cmp);
    qsort(gb, (size_t)cap, sizeof *gb, pair_cmp);
    int r = 0;
    for (; r < cap && ga[r].key + gb[r].key < 0; r++) {
        ma[ga[r].j] = gb[r].i, assign[gb[r].i] = a;
        mb[gb[r].j] = ga[r].i, assign[ga[r].i] = b;
    }
    return r;
}

static void assign_exchange(const double *D, int n, int k, int cap, int *members, int *fill,
                            int *assign, kmeans_pair *ga, kmeans_pair *gb) {
    memset(fill, 0, (size_t)k * sizeof *fill);
    for (int i = 0; i < n; i++)
        members[(size_t)assign[i] * cap + fill[assign[i]]++] = i;
    for (int pass = 0; pass < KMEANS_MAX_PASSES; pass++) {
        int swapped = 0;
        for (int a = 0; a < k; a++)
            for (int b = a + 1; b < k; b++)
                swapped += exchange_pair(D, k, cap, a, b, members, assign, ga, gb);
        if (!swapped) break;
    }
}

static void centres_update(const float *X, int n, int d, int k, int cap, const int *assign,
                           double *C) {
    memset(C, 0, (size_t)k * d * sizeof *C);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++)
            C[(size_t)assign[i] * d + t] += X[(size_t)i * d + t];
    for (size_t e = 0; e < (size_t)k * d; e++)
        C[e] /= cap;
}

static int kmeans_check_args(const float *X, int n, int d, int k, int iters, const int *assign) {
    if (n < 1 || d < 1 || k < 1 || k > n || iters < 1)
        return MOLT_ERROR(MOLT_ERR_INPUT,
                          "balanced k-means of %d points in R^%d into %d clusters, %d rounds "
                          "(need n, d, iters >= 1 and 1 <= k <= n)",
                          n, d, k, iters);
    if (n % k)
        return MOLT_ERROR(MOLT_ERR_INPUT,
                          "balanced k-means: %d clusters do not divide %d points into equal "
                          "clusters (k must divide n)",
                          k, n);
    if ((long long)n * k > (long long)(SIZE_MAX / sizeof(kmeans_pair)))
        return MOLT_ERROR(MOLT_ERR_INPUT, "balanced k-means: %d x %d distances do not fit memory",
                          n, k);
    if (!X || !assign) return MOLT_ERROR(MOLT_ERR_INPUT, "balanced k-means: NULL argument");
    return MOLT_OK;
}

static double assign_cost(const double *D, int n, int k, const int *assign) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += D[(size_t)i * k + assign[i]];
    return s;
}

int molt_kmeans_balanced(const float *X, int n, int d, int k, uint64_t seed, int iters,
                         int *assign) {
    int rc = MOLT_OK;
    double *C = NULL, *D = NULL;
    kmeans_pair *pairs = NULL, *ga = NULL, *gb = NULL;
    int *prev = NULL, *alt = NULL, *members = NULL, *fill = NULL;
    unsigned char *chosen = NULL;
    MOLT_TRY(kmeans_check_args(X, n, d, k, iters, assign));
    const int cap = n / k;
    MOLT_ALLOC(C, (size_t)k * d);
    MOLT_ALLOC(D, (size_t)n * k);
    MOLT_ALLOC(pairs, (size_t)n * k);
    MOLT_ALLOC(ga, cap);
    MOLT_ALLOC(gb, cap);
    MOLT_ALLOC(prev, n);
    MOLT_ALLOC(alt, n);
    MOLT_ALLOC(members, n);
    MOLT_ALLOC(fill, k);
    MOLT_ALLOC(chosen, n);
    kmeans_init(X, n, d, k, seed, C, D, chosen); /* D's first n entries as scratch */
    for (int it = 0; it < iters; it++) {
        for (int i = 0; i < n; i++)
            for (int c = 0; c < k; c++)
                D[(size_t)i * k + c] = sqdist(X + (size_t)i * d, C + (size_t)c * d, d);
        assign_greedy(D, n, k, cap, pairs, fill, assign);
        assign_exchange(D, n, k, cap, members, fill, assign, ga, gb);
        if (it > 0) {
            /* the last assignment, improved the same way, wins ties: the cost
             * never rises, so the rounds settle */
            memcpy(alt, prev, (size_t)n * sizeof *alt);
            assign_exchange(D, n, k, cap, members, fill, alt, ga, gb);
            if (assign_cost(D, n, k, alt) <= assign_cost(D, n, k, assign))
                memcpy(assign, alt, (size_t)n * sizeof *assign);
            if (!memcmp(prev, assign, (size_t)n * sizeof *assign)) break;
        }
        memcpy(prev, assign, (size_t)n * sizeof *assign);
        centres_update(X, n, d, k, cap, assign, C);
    }
done:
    free(C), free(D), free(pairs), free(ga), free(gb), free(prev), free(alt), free(members),
        free(fill), free(chosen);
    return rc;
}
