/* pa_dump — molt_pa_loss (FactorLLM's PA and balance losses) on seeded
 * cases, for tests/ref/pa_oracle.py to recompute with PyTorch autograd:
 *   pa_dump OUT.h5
 * Per case /<name>/{z,ell,sel,dz} ([T,N]; sel as float 0/1) and attributes
 * k, tokens, pa_coef, bal_coef, pa, balance. Cases: plain, extreme logits
 * (softmax entries below 1e-7 and above 1 - 1e-7: the clipping), tied
 * errors (the label takes the lower index), k = N, k = 1, and a normaliser
 * larger than T (a micro-batch of a bigger global batch). */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/pa.h"
#include "molt/rng.h"

typedef struct {
    const char *name;
    int T, N, k, extreme, ties;
    double tokens;
} pa_case;

static int dump_case(hid_t f, const char *fname, const pa_case *c, uint32_t id) {
    int rc = MOLT_OK, T = c->T, N = c->N;
    float *z = NULL, *ell = NULL, *self = NULL, *dz = NULL;
    uint8_t *sel = NULL;
    double *scratch = NULL;
    char path[128];
    hid_t g = -1;
    MOLT_ALLOC(z, T * N);
    MOLT_ALLOC(ell, T * N);
    MOLT_ALLOC(self, T * N);
    MOLT_ALLOC(dz, T * N);
    MOLT_ALLOC(sel, T * N);
    MOLT_ALLOC(scratch, 2 * N);
    molt_rng r;
    molt_rng_init(&r, 77, MOLT_RNG_TEST, id, 0, 0);
    for (int i = 0; i < T * N; i++) {
        z[i] = (float)molt_rng_normal(&r) * (c->extreme && i % 3 == 0 ? 25.0f : 1.0f);
        ell[i] = c->ties ? (float)(molt_rng_below(&r, 3)) * 0.5f : (float)molt_rng_uniform(&r);
        dz[i] = 1e-4f; /* it accumulates: the oracle subtracts this */
    }
    for (int t = 0; t < T; t++) /* the router's top-k by logit (distinct values) */
        for (int i = 0; i < N; i++) {
            int better = 0;
            for (int j = 0; j < N; j++)
                better += z[t * N + j] > z[t * N + i];
            sel[t * N + i] = better < c->k, self[t * N + i] = (float)sel[t * N + i];
        }
    molt_pa_cfg cfg = {0.05, 0.01, c->k};
    molt_pa_values v = molt_pa_loss(&cfg, z, ell, sel, T, N, c->tokens, scratch, dz);
    snprintf(path, sizeof path, "/%s", c->name);
    if ((g = H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot create %s", path);
    const char *names[4] = {"z", "ell", "sel", "dz"};
    const float *data[4] = {z, ell, self, dz};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "/%s/%s", c->name, names[i]);
        MOLT_TRY(molt_h5_write_f32(f, fname, path, data[i], T, N));
    }
    MOLT_TRY(molt_h5_write_attr_long(g, fname, "k", c->k));
    MOLT_TRY(molt_h5_write_attr_double(g, fname, "tokens", c->tokens));
    MOLT_TRY(molt_h5_write_attr_double(g, fname, "pa_coef", cfg.pa_coef));
    MOLT_TRY(molt_h5_write_attr_double(g, fname, "bal_coef", cfg.bal_coef));
    MOLT_TRY(molt_h5_write_attr_double(g, fname, "pa", v.pa));
    MOLT_TRY(molt_h5_write_attr_double(g, fname, "balance", v.balance));
done:
    if (g >= 0) H5Gclose(g);
    free(z), free(ell), free(self), free(dz), free(sel), free(scratch);
    return rc;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rc = MOLT_OK;
    hid_t f = -1;
    const pa_case cases[] = {{"plain", 32, 4, 1, 0, 0, 32}, {"extreme", 24, 6, 2, 1, 0, 24},
                             {"ties", 20, 5, 2, 0, 1, 20},  {"k_eq_n", 16, 4, 4, 0, 0, 16},
                             {"k1_n8", 40, 8, 1, 1, 0, 40}, {"micro", 12, 4, 2, 0, 0, 48}};
    if (argc != 2) MOLT_FAIL(MOLT_ERR_INPUT, "usage: pa_dump OUT.h5");
    MOLT_TRY(molt_h5_create(&f, argv[1], "", 0));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        MOLT_TRY(dump_case(f, argv[1], &cases[i], (uint32_t)i));
done:
    if (f >= 0) H5Fclose(f);
    MPI_Finalize();
    return rc;
}
