/* cmd_factorize.c — `molt factorize CONFIG --ckpt DENSE.h5 --out MOE.h5`
 * (FactorLLM, DESIGN §6): a trained dense model's SwiGLU FFNs split into
 * experts.
 *
 * CONFIG describes the mixture: moe.placement = ffn, its experts per layer
 * (moe.num_experts, a count or a MoLA list) and moe.expert_d_ff = d_ff / N
 * (0 means that), the router (FactorLLM's is `factor`), factor.method. Every
 * other model key must match DENSE.h5's model. Every rank builds the same
 * model: the non-FFN weights come from DENSE.h5, each layer's neurons are
 * grouped (include/molt/factorize.h; `cluster` runs its SVD on all ranks
 * with ScaLAPACK), expert e gets its group's rows/columns, and the routers
 * start from CONFIG's seed. Rank 0 writes MOE.h5 (the layout of final.h5, so
 * model.init_from, molt eval and molt export take it); with factor.train =
 * router,experts and moe.aux = pa it also holds the dense FFN, frozen, as the
 * PA loss's teacher (/teacher/...). With every expert
 * selected at weight 1 (moe.top_k = N: the factor router's N/k scale is 1)
 * the model computes exactly the dense model's function. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/config.h"
#include "molt/dist.h"
#include "molt/err.h"
#include "molt/factorize.h"
#include "molt/h5io.h"
#include "molt/model.h"

static void factorize_help(void) {
    printf(
        "usage: [mpirun -np N] molt factorize CONFIG --ckpt DENSE.h5 --out MOE.h5 [--set k=v ...]\n"
        "\n"
        "FactorLLM: split every layer's dense SwiGLU FFN (d_ff neurons) of DENSE.h5 (a\n"
        "checkpoint or final.h5 of a model without experts) into N experts of d_ff/N\n"
        "neurons: expert e gets its neurons' rows of gate_proj/up_proj and columns of\n"
        "down_proj, so that the experts sum to the dense FFN exactly. CONFIG is the\n"
        "mixture to build: moe.placement = ffn, moe.num_experts = N (or a per-layer\n"
        "list), moe.expert_d_ff = 0 or d_ff/N, the router (factor for FactorLLM) and\n"
        "  factor.method   contiguous (reference) | random (seeded permutation) |\n"
        "                  cluster (neurons embedded by a ScaLAPACK SVD of the stacked\n"
        "                  [gate_proj | up_proj], then balanced k-means into N equal\n"
        "                  groups; factor.svd_rank, factor.kmeans_iters)\n"
        "The other model keys must match DENSE.h5. Routers are freshly initialised\n"
        "from train.seed. MOE.h5 has the layout of final.h5: use it as\n"
        "model.init_from, or with molt eval / molt export.\n"
        "\n"
        "  --ckpt DENSE.h5           the dense weights (required)\n"
        "  --out MOE.h5              where to write (required; written atomically)\n"
        "  --set section.key=value   override one key of CONFIG (repeatable)\n"
        "  --help                    this text\n");
}

typedef struct {
    int argc;
    char **argv;
    const char *ckpt, *out;
} fz_args;

static int parse(fz_args *a, molt_config *c) {
    int rc = MOLT_OK;
    a->ckpt = a->out = NULL;
    for (int i = 2; i < a->argc; i++) {
        const char *s = a->argv[i];
        int more = i + 1 < a->argc;
        if (!strcmp(s, "--ckpt") && more)
            a->ckpt = a->argv[++i];
        else if (!strcmp(s, "--out") && more)
            a->out = a->argv[++i];
        else if (!strcmp(s, "--set") && more) {
            if (c) MOLT_TRY(molt_config_set(c, a->argv[i + 1]));
            i++;
        } else
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "molt factorize: unexpected argument '%s' (molt factorize "
                      "--help)",
                      s);
    }
    if (!a->ckpt || !a->out)
        MOLT_FAIL(MOLT_ERR_INPUT, "molt factorize: --ckpt DENSE.h5 and --out MOE.h5 are required");
done:
    return rc;
}

static int resolve(void *ctx, molt_config *c, char **text) {
    int rc = MOLT_OK;
    fz_args *a = ctx;
    molt_config_defaults(c);
    MOLT_TRY(molt_config_load(c, a->argv[1]));
    MOLT_TRY(parse(a, c));
    MOLT_TRY(molt_config_validate(c));
    if (c->moe.placement != MOLT_PLACE_FFN)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: moe.placement must be ffn for molt factorize (the experts "
                  "are slices of the dense FFN)",
                  a->argv[1]);
    for (int l = 0; l < c->model.n_layers; l++) {
        int N = molt_config_experts(c, l);
        if (c->model.d_ff % N != 0 ||
            (c->moe.expert_d_ff != 0 && c->moe.expert_d_ff * N != c->model.d_ff))
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s: layer %d: %d experts of moe.expert_d_ff %d do not "
                      "split model.d_ff %d into equal parts",
                      a->argv[1], l, N, c->moe.expert_d_ff ? c->moe.expert_d_ff : c->model.d_ff / N,
                      c->model.d_ff);
    }
    if (!(*text = molt_config_to_ini(c))) rc = MOLT_ERR_INTERNAL;
done:
    return rc;
}

/* The writable parameter at path (registered by molt_model_create). */
static float *param_at(molt_model *m, const char *path) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].path, path)) return m->params[i].w;
    return NULL;
}

static int factorize_layer(MPI_Comm comm, const molt_config *c, molt_model *m, hid_t file,
                           const char *fname, int l, int rank) {
    int rc = MOLT_OK, d = c->model.d_model, F = c->model.d_ff, N = molt_config_experts(c, l);
    float *gate = NULL, *up = NULL, *down = NULL;
    int *perm = NULL;
    char path[256];
    MOLT_ALLOC(gate, (size_t)F * d);
    MOLT_ALLOC(up, (size_t)F * d);
    MOLT_ALLOC(down, (size_t)F * d);
    MOLT_ALLOC(perm, F);
    const char *names[3] = {"gate_proj", "up_proj", "down_proj"};
    float *dense[3] = {gate, up, down};
    for (int i = 0; i < 3 && !rc; i++) { /* no early exit: every rank reaches the agreement */
        snprintf(path, sizeof path, "/base/model.layers.%d.mlp.%s.weight", l, names[i]);
        if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
            rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s has no dataset %s: not a dense model's weights",
                            fname, path);
        else
            rc = molt_h5_read_f32(file, fname, path, dense[i], i < 2 ? F : d, i < 2 ? d : F);
    }
    MOLT_TRY(molt_agree(comm, rc)); /* the grouping may be collective */
    molt_factor_opts o = {c->factor.method, c->factor.svd_rank, c->factor.kmeans_iters,
                          c->train.seed};
    MOLT_TRY(molt_factor_groups(comm, &o, l, gate, up, F, d, N, perm));
    for (int i = 0; i < 3; i++) { /* factor.train = router,experts with pa: the frozen teacher */
        snprintf(path, sizeof path, "teacher/model.layers.%d.mlp.%s.weight", l, names[i]);
        float *t = param_at(m, path);
        if (t) memcpy(t, dense[i], sizeof(float) * (size_t)F * d);
    }
    for (int e = 0; e < N; e++) {
        float *w[3];
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "experts/model.layers.%d.mlp/expert_%03d/%s.weight", l, e,
                     names[i]);
            if (!(w[i] = param_at(m, path)))
                MOLT_FAIL(MOLT_ERR_INTERNAL, "molt factorize: the model has no %s", path);
        }
        molt_factor_slice(perm, e, F, d, N, gate, up, down, w[0], w[1], w[2]);
    }
    if (rank == 0) {
        int moved = 0; /* neurons whose expert differs from the contiguous split's */
        for (int i = 0; i < F; i++)
            moved += perm[i] / (F / N) != i / (F / N);
        printf("molt factorize: layer %d: %d neurons -> %d experts x %d (%d neurons not in their "
               "contiguous expert)\n",
               l, F, N, F / N, moved);
    }
done:
    free(gate), free(up), free(down), free(perm);
    return rc;
}

int molt_cmd_factorize(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    char *text = NULL;
    molt_config c;
    molt_model m = {0};
    hid_t file = -1;
    fz_args a = {argc, argv, NULL, NULL};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            MPI_Comm_rank(comm, &rank);
            if (rank == 0) factorize_help();
            return MOLT_OK;
        }
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (argc < 2 || argv[1][0] == '-') {
        if (rank == 0)
            fprintf(stderr, "usage: molt factorize CONFIG --ckpt DENSE.h5 --out MOE.h5 "
                            "(molt factorize --help)\n");
        return MOLT_ERR_INPUT;
    }
    MOLT_TRY(molt_cli_config(comm, resolve, &a, &c, &text));
    MOLT_TRY(parse(&a, NULL)); /* every rank: the paths */
    static const char *const methods[] = {"contiguous", "random", "cluster"};
    if (rank == 0) {
        int size = 1;
        MPI_Comm_size(comm, &size);
        printf("molt factorize: %s -> %s, method %s, %d rank(s)\n", a.ckpt, a.out,
               methods[c.factor.method], size);
        fflush(stdout);
    }
    c.parallel.ep = 1; /* every rank builds the whole model */
    rc = molt_model_create(&m, &c, 1, 2, NULL);
    if (!rc) rc = molt_weights_load(a.ckpt, &m, 0); /* embeddings, attention, norms */
    if (!rc && (file = H5Fopen(a.ckpt, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s: cannot open", a.ckpt);
    rc = molt_agree(comm, rc);
    for (int l = 0; !rc && l < c.model.n_layers; l++)
        rc = factorize_layer(comm, &c, &m, file, a.ckpt, l, rank);
    if (file >= 0) H5Fclose(file), file = -1;
    int all = rc;
    MOLT_MPI(MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, comm));
    if ((rc = all)) goto done;
    /* every rank holds the same model: rank 0 writes it */
    MOLT_TRY(molt_agree(comm, rank == 0 ? molt_weights_save(a.out, &m, text, 0) : MOLT_OK));
    if (rank == 0) printf("molt factorize: wrote %s\n", a.out);
done:
    if (file >= 0) H5Fclose(file);
    molt_model_free(&m);
    free(text);
    return rc;
}
