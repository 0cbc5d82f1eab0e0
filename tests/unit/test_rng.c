/* test_rng.c — Philox known answers (Random123 kat_vectors) and stream laws. */
#include "molt/rng.h"
#include "testutil.h"

static void test_philox_kat(void) {
    uint32_t k0[2] = {0, 0}, c0[4] = {0, 0, 0, 0}, out[4];
    molt_philox(k0, c0, out);
    CU_ASSERT_EQUAL(out[0], 0x6627e8d5u);
    CU_ASSERT_EQUAL(out[1], 0xe169c58du);
    CU_ASSERT_EQUAL(out[2], 0xbc57ac4cu);
    CU_ASSERT_EQUAL(out[3], 0x9b00dbd8u);
    uint32_t k1[2] = {0xffffffffu, 0xffffffffu};
    uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    molt_philox(k1, c1, out);
    CU_ASSERT_EQUAL(out[0], 0x408f276du);
    CU_ASSERT_EQUAL(out[1], 0x41c83b0eu);
    CU_ASSERT_EQUAL(out[2], 0xa20bc7c6u);
    CU_ASSERT_EQUAL(out[3], 0x6d5451fdu);
}

static void test_seek_matches_sequential(void) {
    molt_rng a, b;
    molt_rng_init(&a, 1234, MOLT_RNG_TEST, 1, 2, 3);
    uint32_t seq[37];
    for (int i = 0; i < 37; i++) seq[i] = molt_rng_u32(&a);
    for (int i = 0; i < 37; i++) {
        molt_rng_init(&b, 1234, MOLT_RNG_TEST, 1, 2, 3);
        molt_rng_seek(&b, (uint64_t)i);
        CU_ASSERT_EQUAL(molt_rng_u32(&b), seq[i]);
        if (i + 1 < 37) CU_ASSERT_EQUAL(molt_rng_u32(&b), seq[i + 1]);
    }
}

static void test_streams_differ_and_moments(void) {
    molt_rng a, b;
    molt_rng_init(&a, 7, MOLT_RNG_INIT, 0, 0, 0);
    molt_rng_init(&b, 7, MOLT_RNG_DROPOUT, 0, 0, 0);
    int same = 0;
    for (int i = 0; i < 64; i++) same += molt_rng_u32(&a) == molt_rng_u32(&b);
    CU_ASSERT(same < 2);
    double s = 0, s2 = 0, u = 0;
    int n = 200000, below = 0;
    for (int i = 0; i < n; i++) {
        double x = molt_rng_normal(&a);
        s += x;
        s2 += x * x;
        float f = molt_rng_uniform(&a);
        CU_ASSERT(f >= 0.0f && f < 1.0f);
        u += f;
        below += molt_rng_below(&a, 10) < 3;
    }
    CU_ASSERT(fabs(s / n) < 0.01);
    CU_ASSERT(fabs(s2 / n - 1.0) < 0.02);
    CU_ASSERT(fabs(u / n - 0.5) < 0.005);
    CU_ASSERT(fabs((double)below / n - 0.3) < 0.005);
}

int main(int argc, char **argv) {
    molt_test_case cases[] = {{"philox known answers", test_philox_kat},
                              {"seek equals sequential draws", test_seek_matches_sequential},
                              {"streams independent, moments right", test_streams_differ_and_moments},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "rng", cases);
}
