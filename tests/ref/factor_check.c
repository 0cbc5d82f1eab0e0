/* factor_check — compares a dense model's logits with those of its
 * factorization (molt factorize) on one batch of the task suite:
 *   factor_check DENSE_CONFIG DENSE.h5 MOE_CONFIG MOE.h5 TOL [--set k=v ...]
 * The --set overrides apply to MOE_CONFIG (e.g. moe.top_k=N: every expert
 * at weight 1, where the two must agree). Prints the largest logit
 * difference relative to the largest |logit| and both losses; exits 1 when
 * that exceeds TOL. Also checks that every expert of MOE.h5 has equal width
 * and that the experts of each layer together hold every dense neuron once
 * (each expert row of gate_proj equals one dense row). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "molt/config.h"
#include "molt/data.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/model.h"

enum { BATCH = 4 };

/* Every dense gate_proj row appears as exactly one expert row. */
static int check_partition(const molt_model *dense, const molt_model *moe, const molt_config *c) {
    int d = c->model.d_model, F = c->model.d_ff;
    char path[256];
    for (int l = 0; l < c->model.n_layers; l++) {
        int N = molt_config_experts(c, l), fe = F / N, *seen = calloc((size_t)F, sizeof(int));
        if (!seen) return MOLT_ERR_INTERNAL;
        snprintf(path, sizeof path, "base/model.layers.%d.mlp.gate_proj.weight", l);
        const molt_param *g = molt_model_find(dense, path);
        for (int e = 0; g && e < N; e++) {
            snprintf(path, sizeof path, "experts/model.layers.%d.mlp/expert_%03d/gate_proj.weight",
                     l, e);
            const molt_param *x = molt_model_find(moe, path);
            if (!x || x->rows != fe) {
                free(seen);
                return MOLT_ERROR(MOLT_ERR_INPUT, "layer %d expert %d: missing or not %d rows", l,
                                  e, fe);
            }
            for (int j = 0; j < fe; j++) {
                int hit = -1;
                for (int i = 0; i < F && hit < 0; i++)
                    if (!memcmp(x->w + (size_t)j * d, g->w + (size_t)i * d, sizeof(float) * d))
                        hit = i;
                if (hit >= 0) seen[hit]++;
            }
        }
        for (int i = 0; g && i < F; i++)
            if (seen[i] != 1) {
                int times = seen[i];
                free(seen);
                return MOLT_ERROR(MOLT_ERR_INPUT, "layer %d: dense neuron %d is in %d experts", l,
                                  i, times);
            }
        free(seen);
        if (!g) return MOLT_ERROR(MOLT_ERR_INPUT, "the dense model has no %s", path);
    }
    return MOLT_OK;
}

static int run(int argc, char **argv) {
    int rc = MOLT_OK;
    molt_config cd, cm;
    molt_model dense = {0}, moe = {0};
    molt_batch b = {0};
    molt_data *data = NULL;
    float *ld = NULL;
    if (argc < 6)
        MOLT_FAIL(MOLT_ERR_INPUT, "usage: factor_check DENSE_CONFIG DENSE.h5 MOE_CONFIG MOE.h5 TOL "
                                  "[--set k=v ...]");
    double tol = atof(argv[5]);
    MOLT_TRY(driver_model(&cd, &dense, argv[1], argv[2], BATCH, 0, 0, NULL));
    MOLT_TRY(driver_model(&cm, &moe, argv[3], argv[4], BATCH, 0, argc - 6, argv + 6));
    if (cd.train.seq_len != cm.train.seq_len) MOLT_FAIL(MOLT_ERR_INPUT, "seq_len differs");
    MOLT_TRY(check_partition(&dense, &moe, &cm));
    int T = cd.train.seq_len;
    MOLT_TRY(molt_batch_alloc(&b, BATCH, T));
    MOLT_TRY(molt_data_open(&data, &cd, MOLT_SPLIT_EVAL));
    MOLT_TRY(molt_data_fill(data, 0, &b));
    long count = 0;
    double loss_d = molt_model_forward(&dense, &b, 0, 0, 0, &count) / (double)count;
    size_t n = (size_t)BATCH * T * cd.model.vocab_size;
    MOLT_ALLOC(ld, n);
    memcpy(ld, molt_model_logits(&dense), sizeof(float) * n);
    double loss_m = molt_model_forward(&moe, &b, 0, 0, 0, &count) / (double)count;
    const float *lm = molt_model_logits(&moe);
    double dmax = 0, amax = 0;
    for (size_t i = 0; i < n; i++) {
        dmax = fmax(dmax, fabs((double)ld[i] - lm[i]));
        amax = fmax(amax, fabs((double)ld[i]));
    }
    double rel = dmax / (amax > 0 ? amax : 1);
    printf("factor_check: %s: max |logit diff| %.3e = %.3e of max |logit| %.3f; loss dense %.6f "
           "moe %.6f\n",
           argv[4], dmax, rel, amax, loss_d, loss_m);
    if (!(rel <= tol))
        MOLT_FAIL(MOLT_ERR_INPUT, "factor_check: %s: logits differ by %.3e > %.1e", argv[4], rel,
                  tol);
done:
    free(ld);
    molt_data_close(data);
    molt_batch_free(&b);
    molt_model_free(&dense);
    molt_model_free(&moe);
    return rc;
}

DRIVER_MAIN(run)
