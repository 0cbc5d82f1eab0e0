/* oracle_dump — writes what tests/ref/torch_llama.py compares against PyTorch:
 * weights, one batch from the task suite, logits, loss, every trainable's
 * gradient, and the trainable weights after ADAM_STEPS AdamW steps on that
 * batch, all through the same model/optimizer code the trainer uses.
 *   oracle_dump CONFIG OUT.h5 [--set section.key=value ...]
 * Norm weights and LoRA B are randomised first so every gradient is non-zero. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/config.h"
#include "molt/data.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/model.h"
#include "molt/optim.h"
#include "molt/rng.h"
#include "nn/model_internal.h"

enum { ADAM_STEPS = 5, BATCH = 3 };

static int run(int argc, char **argv) {
    int rc = MOLT_OK;
    molt_config cfg;
    molt_model m = {0};
    molt_adamw opt = {0};
    molt_batch b = {0};
    molt_data *data = NULL;
    char *text = NULL;
    float *xo = NULL; /* the xattn module's output rows */
    hid_t file = -1;
    if (argc < 3) MOLT_FAIL(MOLT_ERR_INPUT, "usage: oracle_dump CONFIG OUT.h5 [--set k=v ...]");
    molt_config_defaults(&cfg);
    MOLT_TRY(molt_config_load(&cfg, argv[1]));
    for (int i = 3; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--set")) MOLT_TRY(molt_config_set(&cfg, argv[i + 1]));
    MOLT_TRY(molt_config_validate(&cfg));
    int T = cfg.train.seq_len;
    MOLT_TRY(molt_model_create(&m, &cfg, BATCH, T, NULL));
    molt_rng r;
    molt_rng_init(&r, 4242, MOLT_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < m.n_params; i++) {
        molt_param *p = &m.params[i];
        size_t n = (size_t)p->rows * (p->cols ? p->cols : 1);
        if (p->cols == 0)
            for (size_t j = 0; j < n; j++) p->w[j] = 1.0f + 0.2f * molt_rng_normal(&r);
        else if (strstr(p->path, "lora_B"))
            for (size_t j = 0; j < n; j++) p->w[j] = 0.05f * molt_rng_normal(&r);
    }
    MOLT_TRY(molt_batch_alloc(&b, BATCH, T));
    MOLT_TRY(molt_data_open(&data, &cfg, MOLT_SPLIT_TRAIN));
    MOLT_TRY(molt_data_fill(data, 0, &b));
    MOLT_TRY(molt_adamw_create(&opt, m.n_train));
    if (!(text = molt_config_to_ini(&cfg))) MOLT_FAIL(MOLT_ERR_INTERNAL, "config text");
    MOLT_TRY(molt_h5_create(&file, argv[2], text, 0));
    MOLT_TRY(molt_h5_write_attr_long(file, argv[2], "adam_steps", ADAM_STEPS));
    MOLT_TRY(molt_h5_write_params(file, argv[2], &m, "", MOLT_H5_WEIGHTS));
    MOLT_TRY(molt_h5_write_i32(file, argv[2], "/batch/inputs", b.inputs, BATCH, T));
    MOLT_TRY(molt_h5_write_i32(file, argv[2], "/batch/targets", b.targets, BATCH, T));
    const int nf = m.dims.n_ft, D = m.dims.d;
    if (m.dims.proj) { /* feature inputs [B, n_ft, feat_dim] and the prompts' ends */
        hsize_t dims[3] = {BATCH, (hsize_t)nf, (hsize_t)m.dims.feat_dim};
        MOLT_TRY(molt_h5_write_i32(file, argv[2], "/batch/plen", b.plen, BATCH, 0));
        hid_t sp = H5Screate_simple(3, dims, NULL), ds = -1;
        if (sp >= 0)
            ds = H5Dcreate2(file, "/batch/features", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT,
                            H5P_DEFAULT);
        int bad = ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.feat) < 0;
        if (ds >= 0) H5Dclose(ds);
        if (sp >= 0) H5Sclose(sp);
        if (bad)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write /batch/features", argv[2]);
    }
    if (m.dims.proj) MOLT_ALLOC(xo, (size_t)BATCH * nf * D);
    for (int s = 0; s < ADAM_STEPS; s++) {
        long count = 0;
        memset(m.grad, 0, sizeof(float) * m.n_train);
        molt_moe_stats_reset(&m);
        double loss = molt_model_forward(&m, &b, s, 0, 1, &count);
        /* one batch on one rank: its routing statistics are the global ones */
        MOLT_TRY(molt_moe_stats_reduce(&m, MPI_COMM_WORLD));
        if (s == 0) { /* routing facts the MoE oracle script checks */
            for (int i = 0; m.sites && i < molt_site_slots(&m); i++) {
                const molt_moe_site *site = m.sites[i];
                int empty = 0;
                for (int e = 0; site && e < site->N; e++)
                    empty += site->plan.eoff[e + 1] == site->plan.eoff[e];
                if (site) printf("oracle_dump: %s experts without tokens: %d of %d\n", site->name,
                                 empty, site->N);
            }
        }
        if (s == 0) {
            float lossf = (float)(loss / count);
            MOLT_TRY(molt_h5_write_f32(file, argv[2], "/out/logits", molt_model_logits(&m),
                                       BATCH * T, cfg.model.vocab_size));
            MOLT_TRY(molt_h5_write_f32(file, argv[2], "/out/loss", &lossf, 1, 0));
            for (int j = 0; m.dims.proj && j < BATCH; j++) /* the module's output rows */
                memcpy(xo + (size_t)j * nf * D, m.acts->x + ((size_t)j * T + 1) * D,
                       sizeof(float) * nf * D);
            if (m.dims.proj)
                MOLT_TRY(molt_h5_write_f32(file, argv[2], "/out/xattn", xo, BATCH * nf, D));
            if (molt_model_has_moe(&m)) {
                float auxf = (float)molt_moe_aux_loss(&m);
                MOLT_TRY(molt_h5_write_f32(file, argv[2], "/out/aux_loss", &auxf, 1, 0));
            }
        }
        molt_model_backward(&m, &b, 1.0f / (float)count);
        if (m.failed) MOLT_FAIL(m.failed, "step %d: backward failed", s);
        if (s == 0) MOLT_TRY(molt_h5_write_params(file, argv[2], &m, "grad/", MOLT_H5_GRADS));
        if (s == 0 && m.dims.proj)
            MOLT_TRY(molt_h5_write_f32(file, argv[2], "/out/dfeat", m.acts->fdfeat, BATCH * nf,
                                       m.dims.feat_dim));
        if (s == 0 && m.dims.proj && m.g.embed) /* the gradient of the embedding output */
            MOLT_TRY(molt_h5_write_f32(file, argv[2], "/out/dembed", m.acts->dres, BATCH * T, D));
        double norm, lr;
        molt_optimizer_update(&opt, &m, &cfg, s, molt_grad_sumsq(m.grad, m.n_train), &norm, &lr);
        printf("oracle_dump: step %d loss %.6f grad_norm %.4f lr %.2e\n", s, loss / count, norm,
               lr);
    }
    for (int i = 0; i < m.n_params; i++) {
        const molt_param *p = &m.params[i];
        char path[200];
        if (!p->trainable) continue;
        snprintf(path, sizeof path, "/after/%s", p->path);
        MOLT_TRY(molt_h5_write_f32(file, argv[2], path, p->w, p->rows, p->cols));
    }
done:
    if (file >= 0) H5Fclose(file);
    free(text), free(xo);
    molt_data_close(data);
    molt_batch_free(&b);
    molt_adamw_free(&opt);
    molt_model_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rc = run(argc, argv);
    MPI_Finalize();
    return rc;
}
