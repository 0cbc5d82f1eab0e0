/* cmd_export.c — `molt export CKPT --out DIR [--merged]`: a run's weights
 * (a training checkpoint or final.h5; its config attribute tells the model)
 * as Hugging Face safetensors (DESIGN §8).
 *
 * Without --merged:
 *   DIR/adapter_model.safetensors  every adapter, router and expert tensor,
 *       F32, PEFT-style names (molt_hf_name): shared LoRA
 *       base_model.model.model.layers.3.mlp.up_proj.lora_A.weight, LoRA
 *       experts …up_proj.experts.5.lora_A.weight, routers
 *       base_model.model.<module>.router.weight (.bias), full FFN experts
 *       base_model.model.model.layers.3.mlp.experts.5.gate_proj.weight; in
 *       peft runs with lora.train_norms also the trained RMSNorm weights as
 *       base_model.model.<HF name>;
 *   DIR/adapter_config.json  PEFT's LoRA config (peft_type, r, lora_alpha,
 *       lora_dropout, target_modules = every projection with LoRA, shared or
 *       expert);
 *   DIR/molt_moe.json  what PEFT cannot say: placement, router and its
 *       parameters, experts per layer, expert and shared-LoRA targets, aux
 *       losses, the tensor-name scheme and the resolved molt config;
 *   and, for mode = full runs (the base trained too), DIR/model.safetensors
 *       with the base under its HF names plus DIR/config.json (LlamaForCausalLM;
 *       no config.json for placement = ffn, whose FFNs are the experts).
 * With --merged (runs without experts only; others are refused, exit 2):
 *   DIR/model.safetensors  every base weight, W + (alpha/r) B A where the
 *       projection has shared LoRA (accumulated in double, rounded once),
 *       and DIR/config.json: a dense LLaMA that transformers loads as is.
 * Every file goes to .tmp and is renamed. Each tensor is read from the
 * HDF5 file with its shape and Fletcher32 checksum checked. Serial I/O:
 * rank 0 works, the others return its exit code. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/config.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/metrics.h"
#include "molt/model.h"
#include "molt/router.h"
#include "molt/safetensors.h"

static const char *const placement_names[] = {"none", "plugin", "fused_mlp", "ffn", "xattn"};
_Static_assert(sizeof placement_names / sizeof *placement_names == MOLT_PLACE_XATTN + 1,
               "placement_names follows molt_placement");

static void usage(FILE *out) {
    fprintf(out,
            "usage: molt export CKPT --out DIR [--merged]\n"
            "\n"
            "Write a run's weights (a checkpoint or final.h5) as Hugging Face safetensors:\n"
            "  DIR/adapter_model.safetensors  adapters, routers and experts (F32), PEFT names\n"
            "                                 (base_model.model.<module>.lora_A.weight,\n"
            "                                 ….experts.5.lora_A.weight, ….router.weight)\n"
            "  DIR/adapter_config.json        PEFT LoRA config (r, lora_alpha, target_modules)\n"
            "  DIR/molt_moe.json              placement, router, experts per layer, aux\n"
            "                                 losses and the tensor-name scheme\n"
            "  DIR/model.safetensors, DIR/config.json   the trained base (mode = full runs)\n"
            "\n"
            "options:\n"
            "  --out DIR    the directory to write (created if missing)\n"
            "  --merged     write one dense model instead: DIR/model.safetensors with\n"
            "               W + (alpha/r) B A for every LoRA projection, and DIR/config.json.\n"
            "               For runs without experts only.\n"
            "  -h, --help   print this help and exit\n");
}

typedef struct {
    const char *ckpt, *out;
    int merged, help;
} export_args;

static int parse_args(int argc, char **argv, export_args *a) {
    int rc = MOLT_OK;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            a->help = 1;
        } else if (!strcmp(arg, "--merged")) {
            a->merged = 1;
        } else if (!strcmp(arg, "--out")) {
            if (i + 1 >= argc) MOLT_FAIL(MOLT_ERR_INPUT, "export: --out needs a DIR");
            a->out = argv[++i];
        } else if (!strncmp(arg, "--out=", 6)) {
            a->out = arg + 6;
        } else if (arg[0] == '-' && arg[1]) {
            MOLT_FAIL(MOLT_ERR_INPUT, "export: unknown option '%s' (see molt export --help)", arg);
        } else if (a->ckpt) {
            MOLT_FAIL(MOLT_ERR_INPUT, "export: one CKPT only, got '%s' and '%s'", a->ckpt, arg);
        } else {
            a->ckpt = arg;
        }
    }
    if (a->help) goto done;
    if (!a->ckpt) MOLT_FAIL(MOLT_ERR_INPUT, "export: no CKPT given (see molt export --help)");
    if (!a->out || !a->out[0])
        MOLT_FAIL(MOLT_ERR_INPUT, "export: --out DIR is required (see molt export --help)");
done:
    return rc;
}

/* ---------------- the run ---------------- */

typedef struct {
    const char *path;
    hid_t file;
    char *ini; /* the config attribute */
    molt_config c;
    molt_model view; /* dims only: what the config implies */
    molt_param_desc *desc;
    int n;
} run_file;

static int open_run(run_file *r, const char *path) {
    int rc = MOLT_OK;
    char *fmt = NULL, where[MOLT_PATH_MAX + 32];
    long version = 0;
    memset(r, 0, sizeof *r);
    r->path = path, r->file = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(path) <= 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a readable HDF5 file", path);
    if ((r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open (truncated or damaged)", path);
    MOLT_TRY(molt_h5_read_attr_str(r->file, path, "/", "format", &fmt));
    if (strcmp(fmt, MOLT_CKPT_FORMAT))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: format '%s' is not %s", path, fmt, MOLT_CKPT_FORMAT);
    MOLT_TRY(molt_h5_read_attr_long(r->file, path, "/", "version", &version));
    if (version != MOLT_CKPT_VERSION)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: format version %ld; this molt reads version %d", path,
                  version, MOLT_CKPT_VERSION);
    MOLT_TRY(molt_h5_read_attr_str(r->file, path, "/", "config", &r->ini));
    snprintf(where, sizeof where, "%s (config attribute)", path);
    molt_config_defaults(&r->c);
    MOLT_TRY(molt_config_load_string(&r->c, r->ini, where));
    MOLT_TRY(molt_dims_from_config(&r->view.dims, &r->c));
    MOLT_TRY(molt_model_describe_all(&r->view, &r->desc, &r->n));
done:
    free(fmt);
    return rc;
}

static void close_run(run_file *r) {
    if (r->file >= 0) H5Fclose(r->file);
    free(r->ini);
    free(r->desc);
    r->file = -1, r->ini = NULL, r->desc = NULL;
}

static size_t numel(const molt_param_desc *d) {
    return (size_t)d->rows * (size_t)(d->cols ? d->cols : 1);
}

static int read_param(const run_file *r, const molt_param_desc *d, float *buf) {
    char path[200];
    snprintf(path, sizeof path, "/%s", d->path);
    return molt_h5_read_f32(r->file, r->path, path, buf, d->rows, d->cols);
}

/* In the adapter file: everything but the base, plus the trained base
 * tensors of a peft run (RMSNorm weights with lora.train_norms). */
static int in_adapter_file(const run_file *r, const molt_param_desc *d) {
    return d->kind != MOLT_PARAM_BASE || (r->c.model.mode == MOLT_MODE_PEFT && d->trainable);
}

/* The desc index of `path`, or -1. */
static int find_desc(const run_file *r, const char *path) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->desc[i].path, path)) return i;
    return -1;
}

/* ---------------- safetensors files ---------------- */

/* Write the tensors `sel` picks, named by molt_hf_name(peft); `merge` adds
 * each base projection's shared LoRA (alpha/r) B A. */
static int write_tensors(const run_file *r, const char *out, const int *sel, int n, int peft,
                         int merge) {
    int rc = MOLT_OK;
    molt_st_spec *specs = NULL;
    char(*names)[256] = NULL;
    float *buf = NULL, *A = NULL, *B = NULL;
    double *acc = NULL;
    molt_st_writer w = {0};
    size_t most = 1;
    MOLT_ALLOC(specs, n > 0 ? n : 1);
    MOLT_ALLOC(names, n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        const molt_param_desc *d = &r->desc[sel[i]];
        MOLT_TRY(molt_hf_name(d->path, peft, names[i], sizeof names[i]));
        specs[i] =
            (molt_st_spec){names[i], d->cols ? 2 : 1, {(uint64_t)d->rows, (uint64_t)d->cols}};
        if (numel(d) > most) most = numel(d);
    }
    MOLT_ALLOC(buf, most);
    MOLT_TRY(molt_st_writer_open(&w, out, specs, n));
    for (int i = 0; i < n; i++) {
        const molt_param_desc *d = &r->desc[sel[i]];
        MOLT_TRY(read_param(r, d, buf));
        char lora[200];
        const size_t wlen = strlen(d->path) - strlen(".weight");
        snprintf(lora, sizeof lora, "adapters/%.*s/shared/lora_A", (int)(wlen - 5), d->path + 5);
        int ia = merge && d->cols ? find_desc(r, lora) : -1;
        if (ia >= 0) { /* W + scale * B A, row by row in double */
            snprintf(lora, sizeof lora, "adapters/%.*s/shared/lora_B", (int)(wlen - 5),
                     d->path + 5);
            int ib = find_desc(r, lora);
            if (ib < 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: lora_A without lora_B", lora);
            const molt_param_desc *da = &r->desc[ia], *db = &r->desc[ib];
            free(A), free(B), free(acc);
            A = NULL, B = NULL, acc = NULL;
            MOLT_ALLOC(A, numel(da));
            MOLT_ALLOC(B, numel(db));
            MOLT_ALLOC(acc, d->cols);
            MOLT_TRY(read_param(r, da, A));
            MOLT_TRY(read_param(r, db, B));
            const double scale = r->c.lora.alpha / r->c.lora.r;
            const int rank = da->rows, in = d->cols;
            for (int o = 0; o < d->rows; o++) {
                for (int i2 = 0; i2 < in; i2++)
                    acc[i2] = 0;
                for (int k = 0; k < rank; k++) {
                    const double b = B[(size_t)o * rank + k];
                    const float *a = A + (size_t)k * in;
                    for (int i2 = 0; i2 < in; i2++)
                        acc[i2] += b * a[i2];
                }
                float *row = buf + (size_t)o * in;
                for (int i2 = 0; i2 < in; i2++)
                    row[i2] = (float)(row[i2] + scale * acc[i2]);
            }
        }
        MOLT_TRY(molt_st_writer_put(&w, buf));
    }
    MOLT_TRY(molt_st_writer_close(&w));
done:
    if (rc) molt_st_writer_abort(&w);
    free(specs), free(names), free(buf), free(A), free(B), free(acc);
    return rc;
}

/* ---------------- JSON descriptions ---------------- */

static int write_json(const char *dir, const char *name, const cJSON *j, int ok) {
    int rc = MOLT_OK;
    char path[MOLT_PATH_MAX + 64], *text = NULL, *line = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!ok || !(text = cJSON_Print(j))) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: out of memory", path);
    MOLT_ALLOC(line, strlen(text) + 2);
    snprintf(line, strlen(text) + 2, "%s\n", text);
    MOLT_TRY(molt_write_text(path, line));
done:
    cJSON_free(text);
    free(line);
    return rc;
}

/* Projection names of a mask as a JSON array (NULL on allocation failure). */
static cJSON *proj_list(unsigned mask) {
    cJSON *a = cJSON_CreateArray();
    for (int p = 0; a && p < MOLT_NPROJ; p++)
        if ((mask & (1u << p)) &&
            !cJSON_AddItemToArray(a, cJSON_CreateString(molt_proj_names[p]))) {
            cJSON_Delete(a);
            return NULL;
        }
    return a;
}

static const unsigned MLP_PROJS = 1u << MOLT_PROJ_GATE | 1u << MOLT_PROJ_UP | 1u << MOLT_PROJ_DOWN;

/* Projections with LoRA experts, and those with shared LoRA (register_all:
 * an expert projection has no shared LoRA). */
static void lora_masks(const molt_dims *d, unsigned *experts, unsigned *shared) {
    *experts = d->placement == MOLT_PLACE_PLUGIN      ? d->moe_targets
               : d->placement == MOLT_PLACE_FUSED_MLP ? MLP_PROJS
                                                      : 0;
    *shared = d->lora_targets & ~*experts;
}

static int write_adapter_config(const run_file *r, const char *dir) {
    unsigned ex, sh;
    lora_masks(&r->view.dims, &ex, &sh);
    cJSON *j = cJSON_CreateObject();
    int ok = j != NULL;
    ok = ok && cJSON_AddStringToObject(j, "peft_type", "LORA");
    ok = ok && cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    ok = ok && cJSON_AddNullToObject(j, "base_model_name_or_path");
    ok = ok && cJSON_AddNumberToObject(j, "r", r->c.lora.r);
    ok = ok && cJSON_AddNumberToObject(j, "lora_alpha", r->c.lora.alpha);
    ok = ok && cJSON_AddNumberToObject(j, "lora_dropout", r->c.lora.dropout);
    cJSON *t = ok ? proj_list(ex | sh) : NULL;
    ok = ok && t && cJSON_AddItemToObject(j, "target_modules", t);
    ok = ok && cJSON_AddStringToObject(j, "bias", "none");
    ok = ok && cJSON_AddFalseToObject(j, "fan_in_fan_out");
    ok = ok && cJSON_AddTrueToObject(j, "inference_mode");
    ok = ok && cJSON_AddNullToObject(j, "modules_to_save");
    int rc = write_json(dir, "adapter_config.json", j, ok);
    cJSON_Delete(j);
    return rc;
}

static int write_moe_json(const run_file *r, const char *dir, const int *sel, int n) {
    const molt_config *c = &r->c;
    const molt_dims *d = &r->view.dims;
    unsigned ex, sh;
    lora_masks(d, &ex, &sh);
    cJSON *j = cJSON_CreateObject(), *x = NULL;
    int ok = j != NULL;
    ok = ok && cJSON_AddStringToObject(j, "format", "molt-moe");
    ok = ok && cJSON_AddNumberToObject(j, "version", 1);
    ok = ok && cJSON_AddStringToObject(j, "placement", placement_names[c->moe.placement]);
    ok = ok && cJSON_AddStringToObject(j, "router", molt_router_names[c->moe.router]);
    ok = ok && cJSON_AddNumberToObject(j, "top_k", c->moe.top_k);
    ok = ok && cJSON_AddNumberToObject(j, "top_p", molt_config_top_p(c));
    ok = ok && cJSON_AddNumberToObject(j, "keep_top_k", c->moe.keep_top_k);
    ok = ok && cJSON_AddNumberToObject(j, "entropy_threshold", c->moe.entropy_threshold);
    ok = ok && cJSON_AddNumberToObject(j, "entropy_q", c->moe.entropy_q);
    ok = ok && cJSON_AddNumberToObject(j, "capacity_factor", c->moe.capacity_factor);
    ok = ok && cJSON_AddNumberToObject(j, "jitter", c->moe.jitter);
    ok = ok && (x = cJSON_AddArrayToObject(j, "num_experts"));
    for (int l = 0; ok && l < d->L; l++)
        ok = cJSON_AddItemToArray(x, cJSON_CreateNumber(d->n_exp[l]));
    x = ok ? proj_list(d->placement == MOLT_PLACE_NONE || d->placement == MOLT_PLACE_XATTN ? 0
                       : d->placement == MOLT_PLACE_PLUGIN                                ? ex
                                                                                          : MLP_PROJS)
           : NULL;
    ok = ok && x && cJSON_AddItemToObject(j, "targets", x);
    x = ok ? proj_list(sh) : NULL;
    ok = ok && x && cJSON_AddItemToObject(j, "lora_targets", x);
    ok = ok && cJSON_AddNumberToObject(j, "r", c->lora.r);
    ok = ok && cJSON_AddNumberToObject(j, "lora_alpha", c->lora.alpha);
    ok = ok && cJSON_AddNumberToObject(j, "expert_d_ff", d->expert_dff);
    if (ok && d->proj) { /* Parrot: model.mm_projector, and the xattn module model.mm_moe */
        ok = cJSON_AddStringToObject(j, "projector", "mlp2x_gelu") &&
             cJSON_AddNumberToObject(j, "feat_dim", d->feat_dim) &&
             cJSON_AddNumberToObject(j, "feat_tokens", d->n_ft) &&
             cJSON_AddNumberToObject(j, "xattn_experts", d->xattn ? d->n_exp[d->L] : 0) &&
             cJSON_AddNumberToObject(j, "moe_weight", d->moe_weight);
    }
    ok = ok && (x = cJSON_AddObjectToObject(j, "aux"));
    const char *aux[] = {"balance", "dynmole", "zloss"};
    const double coef[] = {c->moe.balance_coef, c->moe.dynmole_coef, c->moe.zloss_coef};
    for (int i = 0; ok && i < MOLT_NAUX; i++)
        if (c->moe.aux & (1u << i)) ok = cJSON_AddNumberToObject(x, aux[i], coef[i]) != NULL;
    if (ok && (c->moe.aux & (1u << MOLT_AUX_DYNMOLE)))
        ok = cJSON_AddNumberToObject(x, "dynmole_balance", c->moe.dynmole_balance_coef) != NULL;
    ok = ok && cJSON_AddStringToObject(j, "aux_reduce", c->moe.aux_reduce ? "mean" : "sum");
    ok = ok && (x = cJSON_AddArrayToObject(j, "trained_base"));
    for (int i = 0; ok && i < n; i++) {
        char name[256];
        if (r->desc[sel[i]].kind != MOLT_PARAM_BASE) continue;
        ok = molt_hf_name(r->desc[sel[i]].path, 1, name, sizeof name) == MOLT_OK &&
             cJSON_AddItemToArray(x, cJSON_CreateString(name));
    }
    ok = ok && (x = cJSON_AddObjectToObject(j, "tensor_names"));
    const char *scheme[][2] = {
        {"shared_lora", "base_model.model.{module}.lora_{A,B}.weight"},
        {"expert_lora", "base_model.model.{module}.experts.{e}.lora_{A,B}.weight"},
        {"router", "base_model.model.{module}.router.weight"},
        {"router_bias", "base_model.model.{module}.router.bias"},
        {"ffn_expert",
         "base_model.model.model.layers.{l}.mlp.experts.{e}.{gate,up,down}_proj.weight"},
        {"trained_base", "base_model.model.{Hugging Face name}"},
        {"module", "model.layers.{l}.self_attn.{q,k,v,o}_proj or model.layers.{l}.mlp.{gate,up,"
                   "down}_proj; fused_mlp and ffn routers are on model.layers.{l}.mlp"},
        {"shapes", "lora_A [r, in], lora_B [out, r], router.weight [num_experts, in], "
                   "router.bias [num_experts], ffn experts [expert_d_ff, d] (gate, up) and "
                   "[d, expert_d_ff] (down); row-major [out, in]"},
        {"plugin", "y = W x + sum_e w_e (lora_alpha/r) B_e A_e x"},
        {"fused_mlp", "expert e is the FFN with W + (lora_alpha/r) B_e A_e for gate, up, down; "
                      "y = sum_e w_e FFN_e(x)"},
        {"ffn", "y = sum_e w_e down_e(silu(gate_e x) * up_e x)"}};
    for (size_t i = 0; ok && i < sizeof scheme / sizeof scheme[0]; i++)
        ok = cJSON_AddStringToObject(x, scheme[i][0], scheme[i][1]) != NULL;
    ok = ok && cJSON_AddStringToObject(j, "molt_config", r->ini);
    int rc = write_json(dir, "molt_moe.json", j, ok);
    cJSON_Delete(j);
    return rc;
}

/* transformers' LlamaConfig for the dense model. */
static int write_hf_config(const run_file *r, const char *dir) {
    cJSON *j = cJSON_CreateObject(), *a = NULL;
    int ok = j != NULL;
    ok = ok && (a = cJSON_AddArrayToObject(j, "architectures"));
    ok = ok && cJSON_AddItemToArray(a, cJSON_CreateString("LlamaForCausalLM"));
    ok = ok && cJSON_AddStringToObject(j, "model_type", "llama");
    ok = ok && cJSON_AddStringToObject(j, "hidden_act", "silu");
    ok = ok && cJSON_AddFalseToObject(j, "attention_bias");
    ok = ok && cJSON_AddFalseToObject(j, "mlp_bias");
    ok = ok && cJSON_AddNullToObject(j, "rope_scaling");
    ok = ok && cJSON_AddStringToObject(j, "torch_dtype", "float32");
    for (int i = 0; ok && i < molt_hf_n_config_keys; i++) {
        const molt_hf_key *k = &molt_hf_config_keys[i];
        const char *field = (const char *)&r->c + k->field;
        if (k->type == MOLT_HF_NUMBER)
            ok = cJSON_AddNumberToObject(j, k->hf, *(const double *)field) != NULL;
        else if (k->type == MOLT_HF_BOOL)
            ok = cJSON_AddBoolToObject(j, k->hf, *(const int *)field) != NULL;
        else
            ok = cJSON_AddNumberToObject(j, k->hf, *(const int *)field) != NULL;
    }
    int rc = write_json(dir, "config.json", j, ok);
    cJSON_Delete(j);
    return rc;
}

/* ---------------- the command ---------------- */

static int export_run(const export_args *a) {
    int rc = MOLT_OK, n_ad = 0, n_base = 0;
    run_file r;
    int *ad = NULL, *base = NULL;
    char path[MOLT_PATH_MAX + 64];
    MOLT_TRY(open_run(&r, a->ckpt));
    const int placement = r.c.moe.placement, full = r.c.model.mode == MOLT_MODE_FULL;
    if (a->merged && r.view.dims.proj)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: --merged writes one dense LLaMA; this run also has a feature projector "
                  "(model.projector = mlp2x_gelu) that no LLaMA checkpoint holds. Export it "
                  "without --merged", a->ckpt);
    if (a->merged && placement != MOLT_PLACE_NONE)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: --merged needs a run without experts; this one has "
                  "moe.placement = %s (a mixture is not one dense model). "
                  "Export it without --merged",
                  a->ckpt, placement_names[placement]);
    MOLT_ALLOC(ad, r.n > 0 ? r.n : 1);
    MOLT_ALLOC(base, r.n > 0 ? r.n : 1);
    for (int i = 0; i < r.n; i++) {
        if (r.desc[i].kind == MOLT_PARAM_BASE) base[n_base++] = i;
        if (in_adapter_file(&r, &r.desc[i])) ad[n_ad++] = i;
    }
    const int want_adapters = !a->merged && n_ad > 0, want_base = a->merged || full;
    if (!want_adapters && !want_base)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s holds no adapters, routers or experts, and its base is "
                  "frozen (model.mode = peft): nothing to export. --merged "
                  "writes the base as model.safetensors",
                  a->ckpt);
    MOLT_TRY(molt_mkdirs(a->out));
    if (want_adapters) {
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", a->out);
        MOLT_TRY(write_tensors(&r, path, ad, n_ad, 1, 0));
        MOLT_TRY(write_adapter_config(&r, a->out));
        MOLT_TRY(write_moe_json(&r, a->out, ad, n_ad));
        printf("molt export: %d tensors -> %s (+ adapter_config.json, molt_moe.json)\n", n_ad,
               path);
    }
    if (want_base) {
        snprintf(path, sizeof path, "%s/model.safetensors", a->out);
        MOLT_TRY(write_tensors(&r, path, base, n_base, 0, a->merged));
        if (placement != MOLT_PLACE_FFN) MOLT_TRY(write_hf_config(&r, a->out));
        printf("molt export: %d %s tensors -> %s%s\n", n_base, a->merged ? "merged" : "base", path,
               placement != MOLT_PLACE_FFN ? " (+ config.json)" : "");
    }
done:
    close_run(&r);
    free(ad), free(base);
    return rc;
}

int molt_cmd_export(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0, result = MOLT_OK;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank == 0) {
        export_args a = {0};
        result = parse_args(argc, argv, &a);
        if (result == MOLT_OK && a.help)
            usage(stdout);
        else if (result == MOLT_OK)
            result = export_run(&a);
        fflush(stdout);
    }
    MOLT_MPI(MPI_Bcast(&result, 1, MPI_INT, 0, comm));
    rc = result;
done:
    return rc;
}
