/* rng.c — Philox4x32-10; see include/molt/rng.h. Constants from Random123. */
#include "molt/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

void molt_philox(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]) {
    uint32_t k0 = key[0], k1 = key[1];
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(PHILOX_M0, c0, &hi0);
        uint32_t lo1 = mulhilo(PHILOX_M1, c2, &hi1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void molt_rng_init(molt_rng *r, uint64_t seed, uint32_t purpose, uint32_t a, uint32_t b,
                   uint32_t c) {
    /* The purpose is mixed into the key so streams of different purposes with
     * equal coordinates are unrelated. */
    r->key[0] = (uint32_t)seed ^ (purpose * 0x85EBCA6Bu);
    r->key[1] = (uint32_t)(seed >> 32) ^ (purpose * 0xC2B2AE35u) ^ 0x27D4EB2Fu;
    r->ctr[0] = 0;
    r->ctr[1] = a;
    r->ctr[2] = b;
    r->ctr[3] = c;
    r->used = 4;
}

void molt_rng_seek(molt_rng *r, uint64_t index) {
    r->ctr[0] = (uint32_t)(index / 4);
    molt_philox(r->key, r->ctr, r->buf);
    r->ctr[0]++;
    r->used = (int)(index % 4);
}

uint32_t molt_rng_u32(molt_rng *r) {
    if (r->used >= 4) {
        molt_philox(r->key, r->ctr, r->buf);
        r->ctr[0]++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

float molt_rng_uniform(molt_rng *r) {
    return (float)(molt_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

uint32_t molt_rng_below(molt_rng *r, uint32_t n) {
    /* Lemire's rejection keeps the result unbiased. */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint64_t m = (uint64_t)molt_rng_u32(r) * n;
        if ((uint32_t)m >= threshold) return (uint32_t)(m >> 32);
    }
}

float molt_rng_normal(molt_rng *r) {
    float u1 = molt_rng_uniform(r), u2 = molt_rng_uniform(r);
    double rad = sqrt(-2.0 * log(1.0 - (double)u1)); /* 1-u1 in (0,1] */
    return (float)(rad * cos(6.283185307179586 * (double)u2));
}
