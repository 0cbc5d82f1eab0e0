/* rng.h — counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 *
 * Every random draw in molt is a pure function of (seed, purpose, a, b, c,
 * index): a stream is named by what it is for and by global coordinates
 * (step, global sample index, layer, parameter id, …) — never by MPI rank — so
 * dropout masks, initialisation and data order do not depend on the layout.
 * Draw `index` of a stream is reachable directly (random access). */
#ifndef MOLT_RNG_H
#define MOLT_RNG_H
#include <stdint.h>

typedef enum {
    MOLT_RNG_INIT = 1,    /* a = parameter id */
    MOLT_RNG_DROPOUT = 2, /* a = step, b = global sample index, c = layer*16 + module */
    MOLT_RNG_DATA = 3,    /* a = split (train/eval), b = global sample index */
    MOLT_RNG_SHUFFLE = 4, /* a = epoch */
    MOLT_RNG_TEST = 5,    /* tests only */
    MOLT_RNG_JITTER = 6,  /* router jitter: a = step, b = global sample index, c = layer */
    MOLT_RNG_KMEANS = 7,  /* balanced k-means seeding: a = 0, b = rows, c = clusters */
    MOLT_RNG_FACTOR = 8,  /* molt factorize's random neuron permutation: a = layer */
    MOLT_RNG_MMMB = 9     /* mmmb_lite: a = what (0 prototype, 1 sample, 2 noise), b, c = index */
} molt_rng_purpose;

typedef struct {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0] = block index; ctr[1..3] = a, b, c */
    uint32_t buf[4];
    int used; /* words of buf already consumed (4 = refill) */
} molt_rng;

/* One Philox4x32-10 block. */
void molt_philox(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

void molt_rng_init(molt_rng *r, uint64_t seed, uint32_t purpose, uint32_t a, uint32_t b,
                   uint32_t c);
/* Position the stream at word `index` (next draw returns that word). */
void molt_rng_seek(molt_rng *r, uint64_t index);
uint32_t molt_rng_u32(molt_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float molt_rng_uniform(molt_rng *r);
/* Uniform integer in [0, n) (n > 0), unbiased. */
uint32_t molt_rng_below(molt_rng *r, uint32_t n);
/* Standard normal (Box–Muller on two uniforms). */
float molt_rng_normal(molt_rng *r);

#endif
