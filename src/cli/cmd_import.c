/* cmd_import.c — `molt import SAFETENSORS_DIR_OR_FILE --out BASE.h5 [--set
 * model.key=value ...]`: a Hugging Face LLaMA checkpoint to a molt base
 * weights file (DESIGN §7-§8).
 *
 * Input: DIR/model.safetensors, or the shards DIR/model.safetensors.index.json
 * lists in its weight_map (either file may be named instead of DIR), with
 * F32, F16 or BF16 tensors; every shard's header is validated in full before
 * any tensor is read (include/molt/safetensors.h). The [model] section comes
 * from DIR/config.json (molt_hf_config_keys: hidden_size -> d_model, …;
 * model_type must be llama, hidden_act silu, no attention or MLP bias, no
 * rope_scaling). Without config.json the tensor shapes give vocab_size,
 * d_model, n_layers, d_ff, n_kv_heads and tie_embeddings, and --set
 * model.n_heads=H must give the head count; the other keys keep molt's
 * defaults. --set model.* overrides come last.
 *
 * Output: BASE.h5 with root attrs format="molt-ckpt" version=1 step=0 and
 * config = the resolved INI (mode peft), one float32 dataset /base/<HF name>
 * per base weight of that model (lm_head.weight only when not tied), written
 * to BASE.h5.tmp and renamed. F16/BF16 values are converted exactly. Every
 * weight the model needs must be present with its [out, in] shape; the first
 * missing or mis-shaped one is named with its file (exit 2). Tensors the
 * model does not use (rotary_emb.inv_freq, a tied lm_head, …) are listed and
 * skipped. Then BASE.ini (BASE minus .h5, plus .ini) gets the [model]
 * section with mode = peft and init_from = BASE.h5's absolute path: a
 * config to fine-tune from, once [lora] or [moe] targets are added.
 *
 * RoPE needs no permutation of q_proj/k_proj. rope_forward
 * (src/nn/attention.c) rotates, within each head of q and k laid out
 * [token][head][head_dim], the pairs (x[i], x[i + head_dim/2]): Hugging Face
 * LLaMA's rotate_half convention, with inv_freq_i = theta^(-2i/head_dim).
 * tests/ref/torch_llama.py builds the model the same way (view(B, T, H, hd),
 * q*cos + rotate_half(q)*sin) and matches molt to 1e-4 from the same weights.
 * HF checkpoints already hold q/k in that order (transformers'
 * convert_llama_weights_to_hf.py permutes Meta's interleaved pairs once), so
 * the weights import as they are.
 *
 * Serial I/O: rank 0 does the work and broadcasts its exit code. */
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "molt/config.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/metrics.h"
#include "molt/model.h"
#include "molt/safetensors.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: molt import SAFETENSORS_DIR_OR_FILE --out BASE.h5 [--set model.key=value ...]\n"
            "\n"
            "Convert a Hugging Face LLaMA checkpoint to a molt base weights file. The\n"
            "source is a directory holding model.safetensors, or the shards listed by\n"
            "model.safetensors.index.json (or one of those files). Tensors may be F32,\n"
            "F16 or BF16; all become float32 exactly. The model's shape comes from\n"
            "config.json next to the weights (hidden_size, num_hidden_layers,\n"
            "num_attention_heads, num_key_value_heads, intermediate_size, vocab_size,\n"
            "max_position_embeddings, rms_norm_eps, rope_theta, tie_word_embeddings);\n"
            "without one, from the tensor shapes plus --set model.n_heads=H.\n"
            "\n"
            "Writes BASE.h5 (/base/<Hugging Face name>, step 0) and BASE.ini: its [model]\n"
            "section with mode = peft and init_from = BASE.h5. Fine-tune with e.g.\n"
            "  molt train BASE.ini --set lora.targets=q_proj,v_proj\n"
            "\n"
            "options:\n"
            "  --out PATH              the weights file to write (PATH.tmp, then renamed)\n"
            "  --set model.key=value   override a [model] key (repeatable, applied last)\n"
            "  -h, --help              print this help and exit\n"
            "\n"
            "Exit 2 with the file and tensor named when a header is malformed or a\n"
            "tensor is missing, mis-shaped or of another dtype.\n");
}

typedef struct {
    const char *src, *out;
    const char **sets;
    int n_sets, help;
} import_args;

static int parse_args(int argc, char **argv, import_args *a) {
    int rc = MOLT_OK;
    MOLT_ALLOC(a->sets, argc);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            a->help = 1;
        } else if (!strcmp(arg, "--out") || !strcmp(arg, "--set")) {
            if (i + 1 >= argc) MOLT_FAIL(MOLT_ERR_INPUT, "import: %s needs a value", arg);
            if (arg[2] == 'o')
                a->out = argv[++i];
            else
                a->sets[a->n_sets++] = argv[++i];
        } else if (!strncmp(arg, "--out=", 6)) {
            a->out = arg + 6;
        } else if (!strncmp(arg, "--set=", 6)) {
            a->sets[a->n_sets++] = arg + 6;
        } else if (arg[0] == '-' && arg[1]) {
            MOLT_FAIL(MOLT_ERR_INPUT, "import: unknown option '%s' (see molt import --help)", arg);
        } else if (a->src) {
            MOLT_FAIL(MOLT_ERR_INPUT, "import: one source only, got '%s' and '%s'", a->src, arg);
        } else {
            a->src = arg;
        }
    }
    if (a->help) goto done;
    if (!a->src)
        MOLT_FAIL(MOLT_ERR_INPUT, "import: no SAFETENSORS_DIR_OR_FILE given (see molt import "
                                  "--help)");
    if (!a->out || !a->out[0])
        MOLT_FAIL(MOLT_ERR_INPUT, "import: --out BASE.h5 is required (see molt import --help)");
    for (int i = 0; i < a->n_sets; i++)
        if (strncmp(a->sets[i], "model.", 6))
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "import: --set %s: only model.* keys describe an imported "
                      "base",
                      a->sets[i]);
done:
    return rc;
}

/* ---------------- the source: one file, or shards by index ---------------- */

typedef struct {
    char dir[MOLT_PATH_MAX];
    char index[MOLT_PATH_MAX]; /* "" without an index */
    cJSON *index_json;         /* the index; weight_map checked */
    const cJSON *weight_map;
    molt_st_file *files;
    char **file_names; /* shard names as the index gives them */
    char **used;       /* per file, per tensor (header order): consumed */
    int n_files;
} st_source;

static void source_free(st_source *s) {
    for (int i = 0; i < s->n_files; i++) {
        molt_st_close(&s->files[i]);
        free(s->file_names[i]);
        free(s->used[i]);
    }
    free(s->files), free(s->file_names), free(s->used);
    cJSON_Delete(s->index_json);
    memset(s, 0, sizeof *s);
}

/* The whole of a small JSON file (config.json, index.json). */
static int read_json(const char *path, cJSON **out) {
    int rc = MOLT_OK;
    FILE *f = NULL;
    char *text = NULL;
    struct stat st;
    const long limit = 64l << 20;
    *out = NULL;
    if (!(f = fopen(path, "rb")))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a regular file", path);
    if (st.st_size > limit)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %lld bytes, more than the %ld a JSON description may have",
                  path, (long long)st.st_size, limit);
    size_t n = (size_t)st.st_size;
    MOLT_ALLOC(text, n + 1);
    if (n && fread(text, 1, n, f) != n)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read: %s", path,
                  ferror(f) ? strerror(errno) : "unexpected end of file");
    if (!(*out = cJSON_ParseWithLength(text, n)) || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a JSON object", path);
    }
done:
    if (f) fclose(f);
    free(text);
    return rc;
}

static int path_join(char *out, size_t n, const char *dir, const char *name) {
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
        return MOLT_ERROR(MOLT_ERR_INPUT, "path too long: %s/%s", dir, name);
    return MOLT_OK;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int add_file(st_source *s, const char *name, int *index) {
    int rc = MOLT_OK;
    char path[MOLT_PATH_MAX];
    for (int i = 0; i < s->n_files; i++)
        if (!strcmp(s->file_names[i], name)) {
            *index = i;
            return MOLT_OK;
        }
    molt_st_file *files = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *files);
    if (files) s->files = files;
    char **names = realloc(s->file_names, (size_t)(s->n_files + 1) * sizeof *names);
    if (names) s->file_names = names;
    char **used = realloc(s->used, (size_t)(s->n_files + 1) * sizeof *used);
    if (used) s->used = used;
    if (!files || !names || !used)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "out of memory listing safetensors files");
    MOLT_TRY(path_join(path, sizeof path, s->dir, name));
    int k = s->n_files;
    MOLT_TRY(molt_st_open(&s->files[k], path));
    s->file_names[k] = NULL, s->used[k] = NULL;
    s->n_files++;
    MOLT_ALLOC(s->file_names[k], strlen(name) + 1);
    memcpy(s->file_names[k], name, strlen(name));
    MOLT_ALLOC(s->used[k], s->files[k].h.n);
    *index = k;
done:
    return rc;
}

/* weight_map must map names to plain file names in the same directory. */
static int open_index(st_source *s) {
    int rc = MOLT_OK;
    MOLT_TRY(read_json(s->index, &s->index_json));
    s->weight_map = cJSON_GetObjectItemCaseSensitive(s->index_json, "weight_map");
    if (!cJSON_IsObject(s->weight_map))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: no weight_map object", s->index);
    const cJSON *it;
    cJSON_ArrayForEach(it, s->weight_map) {
        const char *v = cJSON_IsString(it) ? it->valuestring : NULL;
        if (!v || !v[0] || strchr(v, '/') || !strcmp(v, "..") || !strcmp(v, "."))
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s: weight_map entry '%.200s' must name a file in the "
                      "same directory",
                      s->index, it->string);
        int k;
        MOLT_TRY(add_file(s, v, &k));
    }
    if (s->n_files == 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: weight_map is empty", s->index);
done:
    return rc;
}

static int open_source(st_source *s, const char *src) {
    int rc = MOLT_OK, k;
    struct stat st;
    memset(s, 0, sizeof *s);
    if (stat(src, &st) != 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s", src, strerror(errno));
    const char *name = "model.safetensors";
    if (S_ISDIR(st.st_mode)) {
        snprintf(s->dir, sizeof s->dir, "%s", src);
        MOLT_TRY(path_join(s->index, sizeof s->index, src, "model.safetensors.index.json"));
        if (!is_file(s->index)) {
            s->index[0] = '\0';
            char single[MOLT_PATH_MAX];
            MOLT_TRY(path_join(single, sizeof single, src, name));
            if (!is_file(single))
                MOLT_FAIL(MOLT_ERR_INPUT,
                          "%s holds neither model.safetensors nor "
                          "model.safetensors.index.json",
                          src);
        }
    } else {
        const char *slash = strrchr(src, '/');
        snprintf(s->dir, sizeof s->dir, "%.*s", slash ? (int)(slash - src) : 1, slash ? src : ".");
        if (slash == src) snprintf(s->dir, sizeof s->dir, "/");
        name = slash ? slash + 1 : src;
        size_t len = strlen(name);
        if (len > 5 && !strcmp(name + len - 5, ".json"))
            snprintf(s->index, sizeof s->index, "%s", src);
    }
    if (s->index[0])
        MOLT_TRY(open_index(s));
    else
        MOLT_TRY(add_file(s, name, &k));
done:
    return rc;
}

/* Where tensor `name` is, or *t = NULL when absent (not an error here). */
static int locate(st_source *s, const char *name, int *file, const molt_st_tensor **t) {
    int rc = MOLT_OK;
    *t = NULL, *file = 0;
    if (s->index[0]) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->weight_map, name);
        if (!v) goto done;
        MOLT_TRY(add_file(s, v->valuestring, file));
        if (!(*t = molt_st_header_find(&s->files[*file].h, name)))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s maps tensor %s to %s, which has no such tensor", s->index,
                      name, s->files[*file].path);
    } else {
        *t = molt_st_header_find(&s->files[0].h, name);
    }
done:
    return rc;
}

/* What to name when a tensor is absent: the index or the single file. */
static const char *where_missing(const st_source *s) {
    return s->index[0] ? s->index : s->files[0].path;
}

/* ---------------- the [model] section ---------------- */

/* One [model] key through the config parser (its ranges and messages);
 * `where` labels errors. */
static int set_model_key(molt_config *c, const char *key, const char *value, const char *where) {
    char text[256];
    if ((size_t)snprintf(text, sizeof text, "[model]\n%s = %s\n", key, value) >= sizeof text)
        return MOLT_ERROR(MOLT_ERR_INPUT, "%s: value of model.%s too long", where, key);
    return molt_config_load_string(c, text, where);
}

static int check_llama(const cJSON *j, const char *path) {
    int rc = MOLT_OK;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "model_type")) &&
        (!cJSON_IsString(v) || strcmp(v->valuestring, "llama")))
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: model_type is %.60s, not llama (molt imports the LLaMA "
                  "architecture)",
                  path, cJSON_IsString(v) ? v->valuestring : "not a string");
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "hidden_act")) &&
        (!cJSON_IsString(v) || strcmp(v->valuestring, "silu")))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: hidden_act must be silu (molt's FFN is SwiGLU)", path);
    const char *bias[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++)
        if ((v = cJSON_GetObjectItemCaseSensitive(j, bias[i])) && !cJSON_IsFalse(v))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s must be false (molt's projections have no bias)",
                      path, bias[i]);
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling")) && !cJSON_IsNull(v))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: rope_scaling is set; molt implements plain RoPE only", path);
done:
    return rc;
}

static int config_from_json(molt_config *c, const char *path) {
    int rc = MOLT_OK;
    cJSON *j = NULL;
    char value[64], where[MOLT_PATH_MAX + 64];
    MOLT_TRY(read_json(path, &j));
    MOLT_TRY(check_llama(j, path));
    for (int i = 0; i < molt_hf_n_config_keys; i++) {
        const molt_hf_key *k = &molt_hf_config_keys[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k->hf);
        snprintf(where, sizeof where, "%s: %s", path, k->hf);
        if (!v || cJSON_IsNull(v)) {
            if (!k->hf_default) MOLT_FAIL(MOLT_ERR_INPUT, "%s is missing", where);
            if (!k->hf_default[0]) continue; /* num_key_value_heads: = n_heads, below */
            MOLT_TRY(set_model_key(c, k->molt, k->hf_default, where));
            continue;
        }
        double d = v->valuedouble;
        if (k->type == MOLT_HF_BOOL && cJSON_IsBool(v))
            snprintf(value, sizeof value, "%s", cJSON_IsTrue(v) ? "true" : "false");
        else if (k->type == MOLT_HF_NUMBER && cJSON_IsNumber(v))
            snprintf(value, sizeof value, "%.17g", d);
        else if (k->type == MOLT_HF_INT && cJSON_IsNumber(v) && d >= INT_MIN && d <= INT_MAX &&
                 d == (double)(int)d)
            snprintf(value, sizeof value, "%d", (int)d);
        else
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: expected %s", where,
                      k->type == MOLT_HF_BOOL  ? "true or false"
                      : k->type == MOLT_HF_INT ? "an integer"
                                               : "a number");
        MOLT_TRY(set_model_key(c, k->molt, value, where));
    }
    if (!cJSON_GetObjectItemCaseSensitive(j, "num_key_value_heads") ||
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "num_key_value_heads")))
        c->model.n_kv_heads = c->model.n_heads;
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(j, "head_dim");
    if (hd && !cJSON_IsNull(hd) &&
        (!cJSON_IsNumber(hd) || hd->valuedouble * c->model.n_heads != c->model.d_model))
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: head_dim must be hidden_size / num_attention_heads = "
                  "%d / %d in molt",
                  path, c->model.d_model, c->model.n_heads);
done:
    cJSON_Delete(j);
    return rc;
}

/* A 1-D or 2-D tensor's dims (0 for the second of a vector). */
static int dims_of(const molt_st_tensor *t, const char *file, long *rows, long *cols) {
    if (t->ndim < 1 || t->ndim > 2 || t->shape[0] > INT_MAX ||
        (t->ndim == 2 && t->shape[1] > INT_MAX)) {
        char s[128];
        molt_st_shape_text(t, s, sizeof s);
        return MOLT_ERROR(MOLT_ERR_INPUT, "%s: tensor %s has shape %s, not a matrix or vector",
                          file, t->name, s);
    }
    *rows = (long)t->shape[0], *cols = t->ndim == 2 ? (long)t->shape[1] : 0;
    return MOLT_OK;
}

/* The shape-given keys when there is no config.json. */
static int config_from_shapes(st_source *s, molt_config *c, long *kv_rows) {
    int rc = MOLT_OK, f;
    const molt_st_tensor *t;
    long rows = 0, cols = 0;
    char name[160], value[32];
    const char *where = "the tensor shapes (no config.json)";
    MOLT_TRY(locate(s, "model.embed_tokens.weight", &f, &t));
    if (!t)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor model.embed_tokens.weight is missing",
                  where_missing(s));
    MOLT_TRY(dims_of(t, s->files[f].path, &rows, &cols));
    snprintf(value, sizeof value, "%ld", rows);
    MOLT_TRY(set_model_key(c, "vocab_size", value, where));
    snprintf(value, sizeof value, "%ld", cols);
    MOLT_TRY(set_model_key(c, "d_model", value, where));
    int L = 0;
    for (;; L++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", L);
        MOLT_TRY(locate(s, name, &f, &t));
        if (!t) break;
    }
    snprintf(value, sizeof value, "%d", L);
    MOLT_TRY(set_model_key(c, "n_layers", value, where));
    const char *probe[2] = {"model.layers.0.mlp.gate_proj.weight",
                            "model.layers.0.self_attn.k_proj.weight"};
    for (int i = 0; i < 2; i++) {
        MOLT_TRY(locate(s, probe[i], &f, &t));
        if (!t) MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor %s is missing", where_missing(s), probe[i]);
        MOLT_TRY(dims_of(t, s->files[f].path, &rows, &cols));
        if (i == 0) snprintf(value, sizeof value, "%ld", rows);
        if (i == 0)
            MOLT_TRY(set_model_key(c, "d_ff", value, where));
        else
            *kv_rows = rows;
    }
    MOLT_TRY(locate(s, "lm_head.weight", &f, &t));
    MOLT_TRY(set_model_key(c, "tie_embeddings", t ? "false" : "true", where));
done:
    return rc;
}

static int set_given(const import_args *a, const char *key) {
    size_t n = strlen(key);
    for (int i = 0; i < a->n_sets; i++)
        if (!strncmp(a->sets[i], key, n) && (a->sets[i][n] == '=' || a->sets[i][n] == ' '))
            return 1;
    return 0;
}

static int resolve_config(st_source *s, const import_args *a, molt_config *c, int *from_json) {
    int rc = MOLT_OK;
    char path[MOLT_PATH_MAX];
    long kv_rows = 0;
    molt_config_defaults(c);
    MOLT_TRY(set_model_key(c, "mode", "peft", "molt import"));
    MOLT_TRY(path_join(path, sizeof path, s->dir, "config.json"));
    *from_json = is_file(path);
    if (*from_json)
        MOLT_TRY(config_from_json(c, path));
    else
        MOLT_TRY(config_from_shapes(s, c, &kv_rows));
    for (int i = 0; i < a->n_sets; i++)
        MOLT_TRY(molt_config_set(c, a->sets[i]));
    if (!*from_json) {
        if (!set_given(a, "model.n_heads"))
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s has no config.json: give the head count with --set "
                      "model.n_heads=H",
                      s->dir);
        int hd = c->model.d_model / c->model.n_heads;
        if (!set_given(a, "model.n_kv_heads")) {
            if (hd <= 0 || kv_rows % hd)
                MOLT_FAIL(MOLT_ERR_INPUT,
                          "model.layers.0.self_attn.k_proj.weight has %ld rows, "
                          "not a multiple of the head size %d",
                          kv_rows, hd);
            char value[32];
            snprintf(value, sizeof value, "%ld", kv_rows / hd);
            MOLT_TRY(set_model_key(c, "n_kv_heads", value, "the k_proj shape"));
        }
    }
    molt_dims dims;
    MOLT_TRY(molt_dims_from_config(&dims, c));
done:
    return rc;
}

/* ---------------- the weights ---------------- */

/* Copy every base weight of the model into the open HDF5 file. */
static int copy_base(st_source *s, const molt_config *c, hid_t h5, const char *h5name,
                     long *n_tensors, long *n_values, long dtype_count[MOLT_ST_NFLOAT]) {
    int rc = MOLT_OK, nd = 0;
    molt_model view;
    molt_param_desc *desc = NULL;
    float *buf = NULL;
    memset(&view, 0, sizeof view);
    MOLT_TRY(molt_dims_from_config(&view.dims, c));
    MOLT_TRY(molt_model_describe_all(&view, &desc, &nd));
    for (int i = 0; i < nd; i++) {
        const molt_param_desc *d = &desc[i];
        if (d->kind != MOLT_PARAM_BASE) continue;
        const char *name = d->path + strlen("base/");
        const molt_st_tensor *t;
        int f;
        long rows = 0, cols = 0;
        MOLT_TRY(locate(s, name, &f, &t));
        char want[64];
        if (d->cols)
            snprintf(want, sizeof want, "[%d, %d]", d->rows, d->cols);
        else
            snprintf(want, sizeof want, "[%d]", d->rows);
        if (!t)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor %s is missing (expected shape %s)",
                      where_missing(s), name, want);
        const char *file = s->files[f].path;
        if (t->dtype >= MOLT_ST_NFLOAT)
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s: tensor %s has dtype %s; molt imports F32, F16 and "
                      "BF16",
                      file, name, molt_st_dtype_names[t->dtype]);
        int shape_ok = dims_of(t, file, &rows, &cols) == MOLT_OK;
        if (!shape_ok || rows != d->rows || cols != d->cols) {
            char got[128];
            molt_st_shape_text(t, got, sizeof got);
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s: tensor %s has shape %s, expected %s for this model "
                      "(d_model %d, n_heads %d, n_kv_heads %d, d_ff %d, "
                      "vocab_size %d)",
                      file, name, got, want, c->model.d_model, c->model.n_heads,
                      c->model.n_kv_heads, c->model.d_ff, c->model.vocab_size);
        }
        free(buf);
        buf = NULL;
        MOLT_ALLOC(buf, t->numel ? t->numel : 1);
        MOLT_TRY(molt_st_read_f32(&s->files[f], t, buf));
        MOLT_TRY(molt_h5_write_f32(h5, h5name, d->path, buf, d->rows, d->cols));
        s->used[f][t - s->files[f].h.tensors] = 1;
        (*n_tensors)++, *n_values += (long)t->numel, dtype_count[t->dtype]++;
    }
done:
    free(buf);
    free(desc);
    return rc;
}

/* Tensors of the source the model did not take. */
static void report_unused(const st_source *s) {
    long n = 0;
    for (int f = 0; f < s->n_files; f++)
        for (int i = 0; i < s->files[f].h.n; i++) {
            if (s->used[f][i]) continue;
            if (n < 5)
                printf("molt import: skipped tensor %s (%s): not part of the model\n",
                       s->files[f].h.tensors[i].name, s->files[f].path);
            n++;
        }
    if (n > 5) printf("molt import: skipped %ld tensors in all\n", n);
}

static int write_h5(st_source *s, const molt_config *c, const char *ini, const char *out) {
    int rc = MOLT_OK;
    hid_t h5 = -1;
    char tmp[MOLT_PATH_MAX + 8];
    long n_tensors = 0, n_values = 0, dtypes[MOLT_ST_NFLOAT] = {0};
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", out) >= sizeof tmp)
        MOLT_FAIL(MOLT_ERR_INPUT, "import: --out path too long: %s", out);
    MOLT_TRY(molt_h5_create(&h5, tmp, ini, 0));
    MOLT_TRY(copy_base(s, c, h5, tmp, &n_tensors, &n_values, dtypes));
    if (H5Fclose(h5) < 0) {
        h5 = -1;
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: close failed", tmp);
    }
    h5 = -1;
    if (rename(tmp, out) != 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
    report_unused(s);
    printf("molt import: %ld tensors (%ld F32, %ld F16, %ld BF16), %ld parameters from %d "
           "file%s -> %s\n",
           n_tensors, dtypes[MOLT_ST_F32], dtypes[MOLT_ST_F16], dtypes[MOLT_ST_BF16], n_values,
           s->n_files, s->n_files == 1 ? "" : "s", out);
done:
    if (h5 >= 0) H5Fclose(h5);
    if (rc) remove(tmp);
    return rc;
}

/* BASE.ini: the [model] section of the resolved config, init_from = BASE.h5. */
static int write_ini(molt_config *c, const char *src, const char *out) {
    int rc = MOLT_OK;
    char path[MOLT_PATH_MAX + 8], abs[PATH_MAX], *ini = NULL, *text = NULL;
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
    snprintf(path, sizeof path, "%.*s.ini", (int)len, out);
    const char *from = realpath(out, abs) && strlen(abs) <= 160 && !strpbrk(abs, ";#") ? abs : out;
    MOLT_TRY(set_model_key(c, "init_from", from, "--out"));
    if (!(ini = molt_config_to_ini(c))) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot format the config");
    char *start = strstr(ini, "[model]\n"), *end = start ? strstr(start, "\n\n") : NULL;
    if (!start) MOLT_FAIL(MOLT_ERR_INTERNAL, "resolved config has no [model] section");
    if (end) end[1] = '\0';
    size_t n = strlen(src) + strlen(start) + 512;
    MOLT_ALLOC(text, n);
    snprintf(text, n,
             "; molt import %s: the model of init_from. Fine-tune it by adding\n"
             "; [lora] (and [moe], [train], [data]) sections, or on the command line:\n"
             ";   molt train THIS.ini --set lora.targets=q_proj,v_proj\n"
             "%s",
             src, start);
    MOLT_TRY(molt_write_text(path, text));
    printf("molt import: config %s\n", path);
done:
    free(ini);
    free(text);
    return rc;
}

static int import_run(const import_args *a) {
    int rc = MOLT_OK, from_json = 0;
    st_source s;
    molt_config c;
    char *ini = NULL;
    MOLT_TRY(open_source(&s, a->src));
    MOLT_TRY(resolve_config(&s, a, &c, &from_json));
    if (!(ini = molt_config_to_ini(&c))) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot format the config");
    MOLT_TRY(write_h5(&s, &c, ini, a->out));
    MOLT_TRY(write_ini(&c, a->src, a->out));
done:
    free(ini);
    source_free(&s);
    return rc;
}

int molt_cmd_import(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0, result = MOLT_OK;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank == 0) {
        import_args a = {0};
        result = parse_args(argc, argv, &a);
        if (result == MOLT_OK && a.help)
            usage(stdout);
        else if (result == MOLT_OK)
            result = import_run(&a);
        free(a.sets);
        fflush(stdout);
    }
    MOLT_MPI(MPI_Bcast(&result, 1, MPI_INT, 0, comm));
    rc = result;
done:
    return rc;
}
