/* lora_svd_check — lora.init = svd (molt_lora_init_svd) keeps the model's
 * output: on every rank of the job (the SVD is distributed),
 *   lora_svd_check CONFIG TOL [--set k=v ...]
 * builds CONFIG's model from model.init_from, takes the logits of a task
 * batch (B = 0: the base model's), applies the PiSSA initialisation, and
 * checks (rank 0 prints):
 *   the logits again, within TOL of the largest |logit|;
 *   every adapter is now non-zero (the check is not vacuous);
 *   the singular values of s·B_e A_e of the first adapted projection equal
 *   triplets e·r … of the original base weight (LAPACK), within 1e-4. */
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
#include "molt/linalg.h"
#include "molt/model.h"

enum { BATCH = 4 };

static int run(int argc, char **argv) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int rc = MOLT_OK;
    molt_config c;
    molt_model m = {0};
    molt_batch b = {0};
    molt_data *data = NULL;
    float *l0 = NULL, *W0 = NULL, *BA = NULL;
    double *S0 = NULL, *U = NULL, *VT = NULL, *S1 = NULL;
    if (argc < 3) MOLT_FAIL(MOLT_ERR_INPUT, "usage: lora_svd_check CONFIG TOL [--set k=v ...]");
    double tol = atof(argv[2]);
    MOLT_TRY(driver_model(&c, &m, argv[1], NULL, BATCH, 0, argc - 3, argv + 3));
    MOLT_TRY(molt_weights_load(c.model.init_from, &m, 0));
    MOLT_TRY(molt_batch_alloc(&b, BATCH, c.train.seq_len));
    MOLT_TRY(molt_data_open(&data, &c, MOLT_SPLIT_EVAL));
    MOLT_TRY(molt_data_fill(data, 0, &b));
    long count = 0;
    molt_model_forward(&m, &b, 0, 0, 0, &count);
    size_t n = (size_t)BATCH * c.train.seq_len * c.model.vocab_size;
    MOLT_ALLOC(l0, n);
    memcpy(l0, molt_model_logits(&m), sizeof(float) * n);
    /* the first adapted projection: layer 0's gate_proj in the test configs */
    const char *wpath = "base/model.layers.0.mlp.gate_proj.weight";
    const molt_param *W = molt_model_find(&m, wpath);
    if (!W) MOLT_FAIL(MOLT_ERR_INPUT, "no %s", wpath);
    int out = W->rows, in = W->cols, q = out < in ? out : in, r = c.lora.r;
    MOLT_ALLOC(W0, (size_t)out * in);
    memcpy(W0, W->w, sizeof(float) * (size_t)out * in);
    MOLT_TRY(molt_lora_init_svd(&m, MPI_COMM_WORLD));
    molt_model_forward(&m, &b, 0, 0, 0, &count);
    const float *l1 = molt_model_logits(&m);
    double dmax = 0, amax = 0;
    for (size_t i = 0; i < n; i++)
        dmax = fmax(dmax, fabs((double)l0[i] - l1[i])), amax = fmax(amax, fabs((double)l0[i]));
    int zero = 0, adapters = 0;
    for (int i = 0; i < m.n_params; i++) {
        const molt_param *p = &m.params[i];
        if (strncmp(p->path, "adapters/", 9)) continue;
        double s = 0;
        for (long j = 0; j < (long)p->rows * p->cols; j++)
            s += fabs(p->w[j]);
        adapters++, zero += s == 0;
    }
    /* singular values of s·B_e A_e against the original triplets */
    MOLT_ALLOC(S0, q);
    MOLT_ALLOC(U, (size_t)out * q);
    MOLT_ALLOC(VT, (size_t)q * in);
    MOLT_ALLOC(S1, q);
    MOLT_ALLOC(BA, (size_t)out * in);
    MOLT_TRY(molt_svd_local(W0, out, in, q, S0, U, VT));
    double serr = 0;
    int experts = 0;
    for (int e = 0;; e++) {
        char pa[200], pb[200];
        snprintf(pa, sizeof pa, "adapters/model.layers.0.mlp.gate_proj/expert_%03d/lora_A", e);
        snprintf(pb, sizeof pb, "adapters/model.layers.0.mlp.gate_proj/expert_%03d/lora_B", e);
        const molt_param *A = molt_model_find(&m, pa), *B = molt_model_find(&m, pb);
        if (!A || !B) break;
        experts++;
        memset(BA, 0, sizeof(float) * (size_t)out * in);
        for (int o = 0; o < out; o++)
            for (int j = 0; j < r; j++)
                for (int i = 0; i < in; i++)
                    BA[(size_t)o * in + i] +=
                        m.dims.lora_scale * B->w[o * r + j] * A->w[j * in + i];
        MOLT_TRY(molt_svd_local(BA, out, in, r, S1, U, VT));
        for (int j = 0; j < r; j++)
            serr = fmax(serr, fabs(S1[j] - S0[e * r + j]) / S0[0]);
    }
    double rel = dmax / (amax > 0 ? amax : 1);
    if (rank == 0)
        printf("lora_svd_check: %s: logits after PiSSA differ by %.3e of max |logit| %.3f; %d "
               "adapters, %d zero; %d experts of gate_proj hold triplets e*r.. within %.1e\n",
               argv[1], rel, amax, adapters, zero, experts, serr);
    if (!(rel <= tol)) MOLT_FAIL(MOLT_ERR_INPUT, "logits changed by %.3e > %.1e", rel, tol);
    if (zero || !adapters) MOLT_FAIL(MOLT_ERR_INPUT, "%d of %d adapters are zero", zero, adapters);
    if (!experts || !(serr <= 1e-4))
        MOLT_FAIL(MOLT_ERR_INPUT, "expert slices: %d experts, singular value error %.1e", experts,
                  serr);
done:
    free(l0), free(W0), free(BA), free(S0), free(U), free(VT), free(S1);
    molt_data_close(data);
    molt_batch_free(&b);
    molt_model_free(&m);
    return rc;
}

DRIVER_MAIN(run)
