/* features.c — data.source = features (src/data/features.h). */
#include "data/features.h"

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/data.h"
#include "molt/err.h"
#include "molt/mmmb.h"

struct molt_feature_set {
    char jsonl[512];
    int n_ft, feat_dim;
    long n_samples, n_ex;
    float *feat; /* [n_samples, n_ft, feat_dim] */
    molt_feature_example *ex;
};

static int read_features(molt_feature_set *fs, const char *path) {
    int rc = MOLT_OK;
    hid_t file = -1, ds = -1, sp = -1;
    hsize_t dims[3] = {0, 0, 0};
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (!path[0]) MOLT_FAIL(MOLT_ERR_INPUT, "data.source = features: no features file named");
    if (H5Fis_hdf5(path) <= 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a readable HDF5 file", path);
    if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open", path);
    if (H5Lexists(file, "/features", H5P_DEFAULT) <= 0 ||
        (ds = H5Dopen2(file, "/features", H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: no dataset /features", path);
    if ((sp = H5Dget_space(ds)) < 0 || H5Sget_simple_extent_ndims(sp) != 3 ||
        H5Sget_simple_extent_dims(sp, dims, NULL) != 3)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: /features must be 3-D [n_samples, feat_tokens, feat_dim]",
                  path);
    if ((long)dims[1] != fs->n_ft || (long)dims[2] != fs->feat_dim || dims[0] == 0)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: /features is [%llu, %llu, %llu]; the config needs "
                  "[n > 0, model.feat_tokens = %d, model.feat_dim = %d]",
                  path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                  (unsigned long long)dims[2], fs->n_ft, fs->feat_dim);
    fs->n_samples = (long)dims[0];
    MOLT_ALLOC(fs->feat, (size_t)fs->n_samples * fs->n_ft * fs->feat_dim);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fs->feat) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read /features (corrupt file?)", path);
done:
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    if (file >= 0) H5Fclose(file);
    return rc;
}

static int dup_str(char **out, const char *s) {
    int rc = MOLT_OK;
    size_t n = strlen(s) + 1;
    MOLT_ALLOC(*out, n);
    memcpy(*out, s, n);
done:
    return rc;
}

static void example_free(molt_feature_example *e) {
    free(e->prompt);
    for (int j = 0; e->choices && j < e->n_choices; j++)
        free(e->choices[j]);
    free(e->choices);
}

/* One JSONL object into e; errors name path:line. */
static int parse_line(const molt_feature_set *fs, const cJSON *o, long line,
                      molt_feature_example *e) {
    int rc = MOLT_OK;
    const char *p = fs->jsonl;
    const cJSON *smp = cJSON_GetObjectItemCaseSensitive(o, "sample");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *an = cJSON_GetObjectItemCaseSensitive(o, "answer");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "label");
    const cJSON *lg = cJSON_GetObjectItemCaseSensitive(o, "lang");
    e->lang = -1, e->label = 0;
    if (!cJSON_IsNumber(smp) || smp->valuedouble != (double)(long)smp->valuedouble ||
        smp->valuedouble < 0 || smp->valuedouble >= (double)fs->n_samples)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s:%ld: \"sample\" must be an integer in [0, %ld) (rows of "
                  "/features)",
                  p, line, fs->n_samples);
    e->sample = (long)smp->valuedouble;
    if (!cJSON_IsString(pr))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"prompt\" must be a string", p, line);
    MOLT_TRY(dup_str(&e->prompt, pr->valuestring));
    if (cJSON_IsString(an) && !ch) {
        if (!an->valuestring[0])
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"answer\" is empty", p, line);
        MOLT_ALLOC(e->choices, 1);
        e->n_choices = 1;
        MOLT_TRY(dup_str(&e->choices[0], an->valuestring));
    } else if (cJSON_IsArray(ch) && !an) {
        int n = cJSON_GetArraySize(ch);
        if (n < 1) MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"choices\" is empty", p, line);
        MOLT_ALLOC(e->choices, n);
        for (int j = 0; j < n; j++) {
            const cJSON *c = cJSON_GetArrayItem(ch, j);
            if (!cJSON_IsString(c) || !c->valuestring[0])
                MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: choice %d must be a non-empty string", p, line,
                          j);
            MOLT_TRY(dup_str(&e->choices[j], c->valuestring));
            e->n_choices = j + 1;
        }
        if (!cJSON_IsNumber(lb) || lb->valuedouble != (double)(int)lb->valuedouble ||
            lb->valuedouble < 0 || lb->valuedouble >= n)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"label\" must be an index into the %d choices", p,
                      line, n);
        e->label = (int)lb->valuedouble;
    } else {
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s:%ld: give either \"answer\" (a string) or \"choices\" and "
                  "\"label\"",
                  p, line);
    }
    if (lg) {
        for (int l = 0; l < MOLT_MMMB_LANGS && cJSON_IsString(lg); l++)
            if (!strcmp(lg->valuestring, molt_mmmb_lang_names[l])) e->lang = l;
        if (e->lang < 0)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"lang\" must be one of en zh pt ar tr ru", p, line);
    }
done:
    return rc;
}

/* Tokens of example e's row with choice j, <bos> included, <eos> not. */
static size_t row_length(const molt_feature_set *fs, const molt_feature_example *e, int j) {
    return 1 + (size_t)fs->n_ft + strlen(e->prompt) + strlen(e->choices[j]);
}

static int read_jsonl(molt_feature_set *fs, const char *path, int seq_len) {
    int rc = MOLT_OK;
    FILE *f = NULL;
    char *text = NULL;
    long cap = 0, size = 0;
    cJSON *o = NULL;
    if (!(f = fopen(path, "rb"))) MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read", path);
    MOLT_ALLOC(text, size + 1);
    if ((long)fread(text, 1, (size_t)size, f) != size)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read", path);
    text[size] = '\0';
    long line = 0;
    for (char *p = text; *p;) {
        char *end = strchr(p, '\n');
        if (end) *end = '\0';
        line++;
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r')
            q++;
        if (*q) {
            if (!(o = cJSON_Parse(q)) || !cJSON_IsObject(o))
                MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: not a JSON object", path, line);
            if (fs->n_ex == cap) {
                long nc = cap ? 2 * cap : 64;
                molt_feature_example *g = realloc(fs->ex, (size_t)nc * sizeof *g);
                if (!g) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: out of memory", path);
                memset(g + cap, 0, (size_t)(nc - cap) * sizeof *g);
                fs->ex = g, cap = nc;
            }
            fs->n_ex++; /* counted before parsing: close frees a half-parsed example */
            const molt_feature_example *e = &fs->ex[fs->n_ex - 1];
            MOLT_TRY(parse_line(fs, o, line, &fs->ex[fs->n_ex - 1]));
            /* every row must fit: each choice scored, and the training row with <eos> */
            for (int j = 0; j < e->n_choices; j++) {
                size_t need = row_length(fs, e, j) + (j == e->label);
                if (need > (size_t)seq_len + 1)
                    MOLT_FAIL(MOLT_ERR_INPUT,
                              "%s:%ld: the example needs train.seq_len >= %zu, "
                              "got %d",
                              path, line, need - 1, seq_len);
            }
            cJSON_Delete(o);
            o = NULL;
        }
        if (!end) break;
        p = end + 1;
    }
    if (fs->n_ex == 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: no examples", path);
done:
    cJSON_Delete(o);
    if (f) fclose(f);
    free(text);
    return rc;
}

int molt_feature_set_open(molt_feature_set **out, const char *h5_path, const char *jsonl_path,
                          int n_ft, int feat_dim, int seq_len) {
    int rc = MOLT_OK;
    molt_feature_set *fs = NULL;
    MOLT_ALLOC(fs, 1);
    snprintf(fs->jsonl, sizeof fs->jsonl, "%s", jsonl_path);
    fs->n_ft = n_ft, fs->feat_dim = feat_dim;
    MOLT_TRY(read_features(fs, h5_path));
    MOLT_TRY(read_jsonl(fs, jsonl_path, seq_len));
    *out = fs;
    fs = NULL;
done:
    molt_feature_set_close(fs);
    return rc;
}

void molt_feature_set_close(molt_feature_set *fs) {
    if (!fs) return;
    for (long i = 0; i < fs->n_ex; i++)
        example_free(&fs->ex[i]);
    free(fs->ex), free(fs->feat), free(fs);
}

long molt_feature_set_size(const molt_feature_set *fs) {
    return fs->n_ex;
}

const molt_feature_example *molt_feature_set_example(const molt_feature_set *fs, long i) {
    return &fs->ex[i];
}

const float *molt_feature_set_features(const molt_feature_set *fs, long sample) {
    return fs->feat + (size_t)sample * fs->n_ft * fs->feat_dim;
}

int molt_feature_set_row_with(const molt_feature_set *fs, long i, int answer, int T,
                              int32_t *inputs, int32_t *targets, float *feat, int *plen) {
    int rc = MOLT_OK, at = 0;
    const molt_feature_example *e = &fs->ex[i];
    int32_t *tok = NULL;
    const int cap = T + 1;
    const int with_eos = answer < 0;
    const char *ans = e->choices[answer < 0 ? e->label : answer];
    size_t need = row_length(fs, e, answer < 0 ? e->label : answer) + (size_t)with_eos;
    if (need > (size_t)cap)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: example %ld needs %zu positions, train.seq_len is %d",
                  fs->jsonl, i, need - 1, T);
    MOLT_ALLOC(tok, cap);
    tok[at++] = MOLT_TOK_BOS;
    for (int j = 0; j < fs->n_ft; j++)
        tok[at++] = MOLT_TOK_PAD;
    for (const unsigned char *p = (const unsigned char *)e->prompt; *p; p++)
        tok[at++] = *p;
    *plen = at;
    for (const unsigned char *p = (const unsigned char *)ans; *p; p++)
        tok[at++] = *p;
    if (with_eos) tok[at++] = MOLT_TOK_EOS;
    molt_task_layout(tok, at, *plen, 0, T, inputs, targets);
    if (feat)
        memcpy(feat, molt_feature_set_features(fs, e->sample),
               sizeof(float) * (size_t)fs->n_ft * fs->feat_dim);
done:
    free(tok);
    return rc;
}

int molt_feature_set_row(const molt_feature_set *fs, uint64_t i, int T, int32_t *inputs,
                         int32_t *targets, float *feat, int *plen, int *lang) {
    *lang = fs->ex[i].lang;
    return molt_feature_set_row_with(fs, (long)i, -1, T, inputs, targets, feat, plen);
}
