/* cmd_analyze.c — `molt analyze CKPT [--json OUT.json]` (DESIGN §6): how
 * different a run's experts are, per MoE site.
 *   diversity  mean over expert pairs of the mean principal angle (radians,
 *              0 = the same subspace, pi/2 = orthogonal) between the experts'
 *              spaces: LoRA experts the column space of B_e A_e (span B_e,
 *              out x r); FFN experts the input space their gate_proj reads
 *              (span of its rows, d x dff; meaningful when dff < d_model);
 *   erank      mean effective rank exp(-sum_i q_i log q_i), q = sigma /
 *              sum sigma (sigma < 1e-6 sigma_1 counted as 0: float rounding),
 *              of each expert's B_e A_e (LoRA) or gate_proj (FFN);
 *   load       each expert's share of the (token, expert) selections over a
 *              batch of the task suite's eval split (eval.samples rows).
 * The model comes from CKPT's own config attribute (a checkpoint or
 * final.h5). Angles and singular values by LAPACK (include/molt/linalg.h).
 * Prints a table; --json writes the same numbers. Single process. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/config.h"
#include "molt/data.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/linalg.h"
#include "molt/metrics.h"
#include "molt/model.h"

static void analyze_help(void) {
    printf("usage: molt analyze CKPT [--json OUT.json]\n\n"
           "Per MoE site of a checkpoint or final.h5: expert diversity (mean principal\n"
           "angle between the experts' B_e A_e column spaces, or the input spaces of FFN\n"
           "experts' gate_proj), mean effective rank of each expert's update (or\n"
           "gate_proj), and the router load over a batch of the task suite's eval split.\n"
           "Computed with LAPACK. The model is the one CKPT's config attribute describes.\n\n"
           "  --json OUT.json   also write the numbers as JSON\n"
           "  --help            this text\n");
}

/* One expert's space: a row-major m x k basis (copied to double). */
typedef struct {
    double *basis;
    int m, k;
    double erank;
} expert_space;

/* exp(entropy of sigma / sum sigma) of the m x n matrix M. */
static int effective_rank(const float *M, int m, int n, double *out) {
    int rc = MOLT_OK, q = m < n ? m : n;
    double *S = NULL, *U = NULL, *VT = NULL, sum = 0, h = 0;
    MOLT_ALLOC(S, q);
    MOLT_ALLOC(U, (size_t)m * q);
    MOLT_ALLOC(VT, (size_t)q * n);
    MOLT_TRY(molt_svd_local(M, m, n, q, S, U, VT));
    /* singular values below 1e-6 s_1 are the float rounding of a lower-rank
     * matrix (B_e A_e has rank <= r): counted as zero */
    const double floor_ = q > 0 ? 1e-6 * S[0] : 0;
    for (int i = 0; i < q; i++)
        sum += S[i] > floor_ ? S[i] : 0;
    for (int i = 0; i < q && sum > 0; i++)
        if (S[i] > floor_) h -= S[i] / sum * log(S[i] / sum);
    *out = sum > 0 ? exp(h) : 0;
done:
    free(S), free(U), free(VT);
    return rc;
}

/* The space of expert e at `site` ("adapters/<module>" or "experts/<module>"). */
static int expert_space_of(const molt_model *m, const char *site, int e, expert_space *x) {
    int rc = MOLT_OK;
    char path[256];
    float *prod = NULL;
    memset(x, 0, sizeof *x);
    if (!strncmp(site, "experts/", 8)) { /* FFN expert: gate_proj rows span its input space */
        snprintf(path, sizeof path, "%s/expert_%03d/gate_proj.weight", site, e);
        const molt_param *g = molt_model_find(m, path);
        if (!g) MOLT_FAIL(MOLT_ERR_INPUT, "no %s", path);
        x->m = g->cols, x->k = g->rows;
        MOLT_ALLOC(x->basis, (size_t)x->m * x->k);
        for (int i = 0; i < g->rows; i++)
            for (int j = 0; j < g->cols; j++)
                x->basis[(size_t)j * x->k + i] = g->w[(size_t)i * g->cols + j];
        MOLT_TRY(effective_rank(g->w, g->rows, g->cols, &x->erank));
    } else { /* LoRA expert: B_e A_e, column space span B_e */
        snprintf(path, sizeof path, "%s/expert_%03d/lora_A", site, e);
        const molt_param *A = molt_model_find(m, path);
        snprintf(path, sizeof path, "%s/expert_%03d/lora_B", site, e);
        const molt_param *B = molt_model_find(m, path);
        if (!A || !B) MOLT_FAIL(MOLT_ERR_INPUT, "no LoRA pair at %s/expert_%03d", site, e);
        x->m = B->rows, x->k = B->cols;
        MOLT_ALLOC(x->basis, (size_t)x->m * x->k);
        for (long i = 0; i < (long)x->m * x->k; i++)
            x->basis[i] = B->w[i];
        MOLT_ALLOC(prod, (size_t)B->rows * A->cols);
        for (int i = 0; i < B->rows; i++)
            for (int r = 0; r < B->cols; r++)
                for (int j = 0; j < A->cols; j++)
                    prod[(size_t)i * A->cols + j] +=
                        B->w[(size_t)i * B->cols + r] * A->w[(size_t)r * A->cols + j];
        MOLT_TRY(effective_rank(prod, B->rows, A->cols, &x->erank));
    }
done:
    free(prod);
    return rc;
}

/* Mean over pairs of the mean principal angle; NAN when a basis is rank
 * deficient (e.g. LoRA B still zero) — reported as "n/a". */
static double diversity(expert_space *x, int N) {
    double sum = 0;
    int pairs = 0;
    for (int a = 0; a < N; a++)
        for (int b = a + 1; b < N; b++) {
            int q = x[a].k < x[b].k ? x[a].k : x[b].k;
            double *ang = malloc(sizeof(double) * (size_t)q), mean = 0;
            if (!ang) return NAN;
            if (x[a].k > x[a].m || x[b].k > x[b].m ||
                molt_principal_angles(x[a].basis, x[a].m, x[a].k, x[b].basis, x[b].k, ang)) {
                free(ang);
                return NAN;
            }
            for (int i = 0; i < q; i++)
                mean += ang[i] / q;
            free(ang);
            sum += mean, pairs++;
        }
    return pairs ? sum / pairs : NAN;
}

/* The distinct expert sites of the model, in registry order: the path
 * prefix before "/expert_". */
static int list_sites(const molt_model *m, char (*sites)[160], int *nexp, int max) {
    int n = 0;
    for (int i = 0; i < m->n_params; i++) {
        const char *p = m->params[i].path, *cut = strstr(p, "/expert_");
        if (!cut || (strncmp(p, "adapters/", 9) && strncmp(p, "experts/", 8))) continue;
        size_t len = (size_t)(cut - p);
        int e = atoi(cut + 8), found = -1;
        for (int s = 0; s < n && found < 0; s++)
            if (strlen(sites[s]) == len && !strncmp(sites[s], p, len)) found = s;
        if (found < 0 && n < max) {
            memcpy(sites[n], p, len), sites[n][len] = '\0', nexp[n] = 0, found = n++;
        }
        if (found >= 0 && e + 1 > nexp[found]) nexp[found] = e + 1;
    }
    return n;
}

/* Router load over one eval batch: molt_moe_diagnostics after a forward. */
static int measure_load(molt_model *m, const molt_config *c, int B, cJSON **diag) {
    int rc = MOLT_OK;
    molt_batch b = {0};
    molt_data *data = NULL;
    *diag = NULL;
    MOLT_TRY(molt_batch_alloc(&b, B, c->train.seq_len));
    MOLT_TRY(molt_data_open(&data, c, MOLT_SPLIT_EVAL));
    MOLT_TRY(molt_data_fill(data, 0, &b));
    long count = 0;
    molt_moe_stats_reset(m);
    molt_model_forward(m, &b, 0, 0, 0, &count);
    if (m->failed) MOLT_FAIL(m->failed, "molt analyze: the forward pass failed");
    MOLT_TRY(molt_moe_stats_reduce(m, MPI_COMM_SELF));
    *diag = molt_moe_diagnostics(m);
done:
    molt_data_close(data);
    molt_batch_free(&b);
    return rc;
}

enum { MAX_SITES = 512 };

int molt_cmd_analyze(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0, nsites = 0, nexp[MAX_SITES];
    const char *ckpt = NULL, *json = NULL;
    char *ini = NULL, (*sites)[160] = NULL, *text = NULL;
    hid_t file = -1;
    molt_config c;
    molt_model m = {0};
    cJSON *out = NULL, *diag = NULL;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank != 0) return MOLT_OK; /* a single-process command */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            analyze_help();
            return MOLT_OK;
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json = argv[++i];
        } else if (argv[i][0] == '-' || ckpt) {
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "molt analyze: unexpected argument '%s' (molt analyze --help)", argv[i]);
        } else {
            ckpt = argv[i];
        }
    }
    if (!ckpt) MOLT_FAIL(MOLT_ERR_INPUT, "usage: molt analyze CKPT [--json OUT.json]");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(ckpt) <= 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a readable HDF5 file", ckpt);
    if ((file = H5Fopen(ckpt, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open", ckpt);
    MOLT_TRY(molt_h5_read_attr_str(file, ckpt, "/", "config", &ini));
    H5Fclose(file), file = -1;
    molt_config_defaults(&c);
    MOLT_TRY(molt_config_load_string(&c, ini, ckpt));
    c.parallel.ep = 1;
    const int B = c.eval.samples > 0 ? (c.eval.samples < 64 ? c.eval.samples : 64) : 16;
    MOLT_TRY(molt_model_create(&m, &c, B, c.train.seq_len, NULL));
    MOLT_TRY(molt_weights_load(ckpt, &m, 1));
    MOLT_ALLOC(sites, MAX_SITES);
    nsites = list_sites(&m, sites, nexp, MAX_SITES);
    if (!nsites) MOLT_FAIL(MOLT_ERR_INPUT, "%s: a model without experts: nothing to analyze", ckpt);
    if (c.data.source == MOLT_DATA_TASKS) MOLT_TRY(measure_load(&m, &c, B, &diag));
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "checkpoint", ckpt);
    cJSON *arr = cJSON_AddArrayToObject(out, "sites");
    printf("molt analyze %s: %d expert sites\n%-44s %4s %10s %7s  load\n", ckpt, nsites, "site",
           "N", "diversity", "erank");
    for (int s = 0; s < nsites; s++) {
        int N = nexp[s];
        expert_space *x = calloc((size_t)N, sizeof *x);
        if (!x) MOLT_FAIL(MOLT_ERR_INTERNAL, "out of memory");
        double er = 0;
        for (int e = 0; e < N && !rc; e++)
            rc = expert_space_of(&m, sites[s], e, &x[e]);
        for (int e = 0; e < N; e++)
            er += x[e].erank / N;
        double div = rc ? NAN : diversity(x, N);
        for (int e = 0; e < N; e++)
            free(x[e].basis);
        free(x);
        if (rc) goto done;
        const char *module = strchr(sites[s], '/') + 1;
        cJSON *o = cJSON_CreateObject(), *load = NULL;
        cJSON_AddStringToObject(o, "site", module);
        cJSON_AddNumberToObject(o, "experts", N);
        if (isnan(div))
            cJSON_AddNullToObject(o, "diversity");
        else
            cJSON_AddNumberToObject(o, "diversity", div);
        cJSON_AddNumberToObject(o, "effective_rank", er);
        const cJSON *d;
        cJSON_ArrayForEach(d, diag) { /* the router site of this module (plugin: same name) */
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(d, "site");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, module))
                load = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(d, "load"), 1);
        }
        if (load) cJSON_AddItemToObject(o, "load", load);
        cJSON_AddItemToArray(arr, o);
        char dv[32] = "n/a";
        if (!isnan(div)) snprintf(dv, sizeof dv, "%.4f", div);
        printf("%-44s %4d %10s %7.2f ", module, N, dv, er);
        const cJSON *v;
        cJSON_ArrayForEach(v, load) printf(" %.2f", v->valuedouble);
        printf("\n");
    }
    if (json) {
        if (!(text = cJSON_Print(out))) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot format JSON");
        MOLT_TRY(molt_write_text(json, text));
        printf("molt analyze: wrote %s\n", json);
    }
done:
    if (file >= 0) H5Fclose(file);
    free(ini), free(sites), free(text);
    cJSON_Delete(out), cJSON_Delete(diag);
    molt_model_free(&m);
    return rc;
}
