/* mceval.c — multiple-choice evaluation and the `molt eval` run
 * (include/molt/mceval.h). */
#define _POSIX_C_SOURCE 200809L
#include "molt/mceval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "molt/data.h"
#include "molt/ckpt.h"
#include "molt/coll.h"
#include "molt/dist.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/train.h"
#include "train/eval_common.h"

/* ---------------- reading JSONL ---------------- */

int molt_mc_read_text(const char *path, char **text, size_t *len) {
    int rc = MOLT_OK;
    FILE *f = NULL;
    char *buf = NULL;
    size_t n = 0, cap = 1 << 16;
    *text = NULL, *len = 0;
    if (!(f = fopen(path, "rb")))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    MOLT_ALLOC(buf, cap + 1);
    for (;;) { /* no size from stat: works for pipes and /dev/stdin too */
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) MOLT_FAIL(MOLT_ERR_INPUT, "%s: read failed: %s", path, strerror(errno));
        if (n < cap) break;
        char *grown = realloc(buf, 2 * cap + 1);
        if (!grown)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: out of memory reading %zu bytes", path, 2 * cap);
        buf = grown, cap *= 2;
    }
    buf[n] = '\0';
    *text = buf, *len = n;
    buf = NULL;
done:
    free(buf);
    if (f) fclose(f);
    return rc;
}

static int copy_string(char **out, const char *s) {
    int rc = MOLT_OK;
    size_t n = strlen(s);
    MOLT_ALLOC(*out, n + 1);
    memcpy(*out, s, n);
done:
    return rc;
}

static void example_free(molt_mc_example *e) {
    for (int j = 0; e->choices && j < e->n_choices; j++) free(e->choices[j]);
    free(e->choices);
    free(e->context);
    memset(e, 0, sizeof *e);
}

void molt_mc_free(molt_mc_file *f) {
    for (int i = 0; f->ex && i < f->n; i++) example_free(&f->ex[i]);
    free(f->ex);
    f->ex = NULL, f->n = 0;
}

/* One line's JSON object into e; errors name NAME:LINE. */
static int parse_example(const cJSON *o, const char *name, long line, int max_seq_len,
                         molt_mc_example *e) {
    int rc = MOLT_OK;
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(o, "context");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(o, "label");
    if (!ctx) MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: missing key \"context\"", name, line);
    if (!cJSON_IsString(ctx))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"context\" is not a string", name, line);
    if (!ch) MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: missing key \"choices\"", name, line);
    if (!cJSON_IsArray(ch))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"choices\" is not an array of strings", name, line);
    if (!lab) MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: missing key \"label\"", name, line);
    int n = cJSON_GetArraySize(ch);
    if (n < 1) MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"choices\" is empty", name, line);
    double lv = cJSON_IsNumber(lab) ? lab->valuedouble : -1.5;
    if (!cJSON_IsNumber(lab) || lv != floor(lv))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"label\" is not an integer", name, line);
    if (lv < 0 || lv >= n)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: \"label\" %.0f is out of range for %d choices "
                  "(allowed: 0..%d)", name, line, lv, n, n - 1);
    MOLT_TRY(copy_string(&e->context, ctx->valuestring));
    MOLT_ALLOC(e->choices, n);
    e->n_choices = n, e->label = (int)lv, e->line = line;
    for (int j = 0; j < n; j++) {
        const cJSON *s = cJSON_GetArrayItem(ch, j);
        if (!cJSON_IsString(s))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: choice %d is not a string", name, line, j);
        size_t len = strlen(s->valuestring);
        if (len == 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: choice %d is empty", name, line, j);
        if (len > (size_t)max_seq_len)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: choice %d has %zu bytes; model.max_seq_len %d "
                      "scores at most %d", name, line, j, len, max_seq_len, max_seq_len);
        MOLT_TRY(copy_string(&e->choices[j], s->valuestring));
    }
done:
    return rc;
}

int molt_mc_parse(molt_mc_file *f, const char *name, const char *text, size_t len,
                  int max_seq_len) {
    int rc = MOLT_OK, cap = 0;
    cJSON *o = NULL;
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    long line = 0;
    for (size_t at = 0; at < len; line++) {
        const char *s = text + at, *nl = memchr(s, '\n', len - at);
        size_t n = nl ? (size_t)(nl - s) : len - at;
        at += n + (nl != NULL);
        size_t b = 0;
        while (b < n && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) b++;
        if (b == n) continue; /* blank line */
        const char *end = NULL;
        if (!(o = cJSON_ParseWithLengthOpts(s, n, &end, 0)))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: not valid JSON (at column %ld)", name, line + 1,
                      end && end >= s ? (long)(end - s) + 1 : 1L);
        while (end < s + n && (*end == ' ' || *end == '\t' || *end == '\r')) end++;
        if (end != s + n)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: text after the JSON object (at column %ld)", name,
                      line + 1, (long)(end - s) + 1);
        if (!cJSON_IsObject(o))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: not a JSON object", name, line + 1);
        if (f->n == INT_MAX) MOLT_FAIL(MOLT_ERR_INPUT, "%s: more than %d examples", name, INT_MAX);
        if (f->n == cap) {
            int ncap = cap ? (cap > INT_MAX / 2 ? INT_MAX : 2 * cap) : 64;
            molt_mc_example *grown = realloc(f->ex, sizeof *grown * (size_t)ncap);
            if (!grown)
                MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: out of memory at line %ld", name, line + 1);
            memset(grown + cap, 0, sizeof *grown * (size_t)(ncap - cap));
            f->ex = grown, cap = ncap;
        }
        f->n++; /* counted first: molt_mc_free releases a half-built example too */
        MOLT_TRY(parse_example(o, name, line + 1, max_seq_len, &f->ex[f->n - 1]));
        cJSON_Delete(o);
        o = NULL;
    }
    if (f->n == 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: no examples (an empty file?)", name);
done:
    cJSON_Delete(o);
    if (rc) molt_mc_free(f);
    return rc;
}

/* ---------------- sequences ---------------- */

long molt_mc_count(const molt_mc_file *files, int n_files) {
    long s = 0;
    for (int i = 0; i < n_files; i++)
        for (int k = 0; k < files[i].n; k++) s += files[i].ex[k].n_choices;
    return s;
}

/* The shape of choice j's sequence under max_seq_len Tmax: the input is
 * <bos>, the last `kept` context bytes, the choice's bytes but its last. */
static int mc_shape(const molt_mc_example *e, int j, int Tmax, molt_mc_score *sc) {
    size_t c = strlen(e->context), k = strlen(e->choices[j]);
    size_t kept = c < (size_t)Tmax - k ? c : (size_t)Tmax - k; /* k <= Tmax (parse) */
    sc->tokens = sc->bytes = (int)k;
    sc->dropped = (int)(c - kept);
    return (int)(kept + k);
}

int molt_mc_longest(const molt_mc_file *files, int n_files, int max_seq_len) {
    int T = 1;
    molt_mc_score sc;
    for (int i = 0; i < n_files; i++)
        for (int k = 0; k < files[i].n; k++)
            for (int j = 0; j < files[i].ex[k].n_choices; j++) {
                int n = mc_shape(&files[i].ex[k], j, max_seq_len, &sc);
                if (n > T) T = n;
            }
    return T;
}

/* Lay choice j of e out as a batch row of T >= its length: inputs <bos>,
 * context tail, choice (pad after), targets the choice's bytes at the
 * positions that predict them (MOLT_IGNORE elsewhere). */
static void mc_layout(const molt_mc_example *e, int j, int Tmax, int T, int32_t *in, int32_t *tg) {
    molt_mc_score sc;
    int n = mc_shape(e, j, Tmax, &sc), k = sc.bytes, kept = n - k;
    const uint8_t *ctx = (const uint8_t *)e->context + sc.dropped;
    const uint8_t *ch = (const uint8_t *)e->choices[j];
    for (int t = 0; t < T; t++) in[t] = MOLT_TOK_PAD, tg[t] = MOLT_IGNORE;
    in[0] = MOLT_TOK_BOS;
    for (int t = 0; t < kept; t++) in[1 + t] = ctx[t];
    for (int i = 0; i + 1 < k; i++) in[1 + kept + i] = ch[i];
    for (int i = 0; i < k; i++) tg[kept + i] = ch[i];
}

typedef struct {
    const molt_mc_example *e;
    int j;
} mc_seq;

int molt_mc_score_all(molt_model *m, const molt_mc_file *files, int n_files, MPI_Comm comm,
                      molt_mc_score *out) {
    int rc = MOLT_OK, rank = 0, world = 1;
    molt_batch b = {0};
    mc_seq *seq = NULL;
    double *ll = NULL;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    MOLT_MPI(MPI_Comm_size(comm, &world));
    const int B = m->act_B, T = m->act_T, V = m->dims.V, Tmax = m->dims.T_max;
    const long S = molt_mc_count(files, n_files);
    if (S > INT_MAX) MOLT_FAIL(MOLT_ERR_INPUT, "%ld choices: at most %d can be scored", S, INT_MAX);
    if (molt_mc_longest(files, n_files, Tmax) > T)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "the model's sequence length %d is shorter than the "
                  "longest choice sequence", T);
    MOLT_ALLOC(seq, S);
    MOLT_ALLOC(ll, S);
    long s = 0;
    for (int i = 0; i < n_files; i++)
        for (int k = 0; k < files[i].n; k++)
            for (int j = 0; j < files[i].ex[k].n_choices; j++, s++) {
                seq[s].e = &files[i].ex[k], seq[s].j = j;
                mc_shape(seq[s].e, j, Tmax, &out[s]);
                out[s].loglik = 0;
            }
    MOLT_TRY(molt_batch_alloc(&b, B, T));
    /* sequence s on rank s mod world; every rank runs `most`/B forwards */
    const long mine = S > rank ? (S - rank + world - 1) / world : 0, most = (S + world - 1) / world;
    for (long k0 = 0; k0 < most; k0 += B) {
        long left = mine - k0;
        int n = left <= 0 ? 0 : left < B ? (int)left : B;
        b.n_seq = n;
        for (int r = 0; r < n; r++) {
            const mc_seq *q = &seq[rank + (k0 + r) * world];
            mc_layout(q->e, q->j, Tmax, T, b.inputs + (long)r * T, b.targets + (long)r * T);
            b.task[r] = -1;
        }
        long cnt = 0;
        molt_model_forward(m, &b, 0, 0, 0, &cnt);
        if (m->failed) MOLT_FAIL(m->failed, "molt eval: the forward pass failed");
        const float *logits = molt_model_logits(m);
        for (int r = 0; r < n; r++) {
            long g = rank + (k0 + r) * world;
            ll[g] = molt_row_loglik(logits + (long)r * T * V, b.targets + (long)r * T, T, V, NULL,
                                    NULL);
        }
    }
    /* each entry is non-zero on one rank only: the sum is exact */
    MOLT_TRY(molt_reduce_sum_f64(ll, (size_t)S, 0, comm));
    for (long g = 0; g < S; g++) out[g].loglik = ll[g];
done:
    molt_batch_free(&b);
    free(seq);
    free(ll);
    return rc;
}

void molt_mc_predict(const molt_mc_score *sc, int n, int *pred, int *pred_norm) {
    int p = 0, pn = 0;
    for (int j = 1; j < n; j++) {
        if (sc[j].loglik > sc[p].loglik) p = j;
        if (sc[j].loglik / sc[j].bytes > sc[pn].loglik / sc[pn].bytes) pn = j;
    }
    *pred = p, *pred_norm = pn;
}

/* ---------------- outputs ---------------- */

int molt_mc_write_samples(FILE *out, const char *out_name, const molt_mc_file *files,
                          int n_files, const molt_mc_score *sc) {
    int rc = MOLT_OK;
    cJSON *o = NULL;
    char *s = NULL;
    for (int i = 0; i < n_files; i++)
        for (int k = 0; k < files[i].n; k++) {
            const molt_mc_example *e = &files[i].ex[k];
            int p, pn;
            molt_mc_predict(sc, e->n_choices, &p, &pn);
            cJSON *ch;
            if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "file", files[i].name) ||
                !cJSON_AddNumberToObject(o, "index", k) ||
                !cJSON_AddNumberToObject(o, "label", e->label) ||
                !cJSON_AddNumberToObject(o, "pred", p) ||
                !cJSON_AddNumberToObject(o, "pred_norm", pn) ||
                !cJSON_AddNumberToObject(o, "acc", p == e->label) ||
                !cJSON_AddNumberToObject(o, "acc_norm", pn == e->label) ||
                !(ch = cJSON_AddArrayToObject(o, "choices")))
                MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot build a JSON line", out_name);
            for (int j = 0; j < e->n_choices; j++) {
                cJSON *c = cJSON_CreateObject();
                if (!c) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot build a JSON line", out_name);
                cJSON_AddItemToArray(ch, c);
                if (!cJSON_AddNumberToObject(c, "loglik", sc[j].loglik) ||
                    !cJSON_AddNumberToObject(c, "tokens", sc[j].tokens) ||
                    !cJSON_AddNumberToObject(c, "bytes", sc[j].bytes))
                    MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot build a JSON line", out_name);
            }
            if (!(s = cJSON_PrintUnformatted(o)))
                MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot format a JSON line", out_name);
            if (fprintf(out, "%s\n", s) < 0)
                MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: write failed: %s", out_name, strerror(errno));
            cJSON_free(s);
            s = NULL;
            cJSON_Delete(o);
            o = NULL;
            sc += e->n_choices;
        }
done:
    cJSON_free(s);
    cJSON_Delete(o);
    return rc;
}

static void print_mc_table(const molt_mc_file *files, int n_files, const molt_mc_score *sc) {
    int w = 4;
    for (int i = 0; i < n_files; i++) {
        int n = (int)strlen(files[i].name);
        w = n > w ? n : w;
    }
    printf("\n| %-*s | %6s | %8s | %8s |\n|-", w, "file", "n", "acc", "acc_norm");
    for (int i = 0; i < w; i++) putchar('-');
    printf("-|--------|----------|----------|\n");
    for (int i = 0; i < n_files; i++) {
        long hit = 0, hit_norm = 0;
        for (int k = 0; k < files[i].n; k++) {
            const molt_mc_example *e = &files[i].ex[k];
            int p, pn;
            molt_mc_predict(sc, e->n_choices, &p, &pn);
            hit += p == e->label, hit_norm += pn == e->label;
            sc += e->n_choices;
        }
        printf("| %-*s | %6d | %8.4f | %8.4f |\n", w, files[i].name, files[i].n,
               (double)hit / files[i].n, (double)hit_norm / files[i].n);
    }
}

static void print_task_table(const double acc[MOLT_NTASKS], double eval_loss, int samples) {
    double sum = 0;
    int n = 0;
    printf("\nbuilt-in task suite, %d held-out examples per task (exact match):\n"
           "| task       | accuracy |\n|------------|----------|\n", samples);
    for (int t = 0; t < MOLT_NTASKS; t++)
        if (acc[t] >= 0) {
            printf("| %-10s | %7.1f%% |\n", molt_task_names[t], 100 * acc[t]);
            sum += acc[t], n++;
        }
    printf("| %-10s | %7.1f%% |\neval loss %.4f\n", "mean", n ? 100 * sum / n : 0.0, eval_loss);
}

/* Feature models: accuracy per language, and the xattn module's routing. */
static void print_language_table(const double acc[MOLT_FEAT_GROUPS], double eval_loss,
                                 const double *route, int nexp, const char *site) {
    double sum = 0;
    int n = 0;
    printf("\nper-language multiple choice (%s):\n| language   | accuracy |\n"
           "|------------|----------|\n", "right answer = highest summed log-probability");
    for (int g = 0; g < MOLT_FEAT_GROUPS; g++)
        if (acc[g] >= 0) {
            printf("| %-10s | %7.1f%% |\n", molt_feat_group_names[g], 100 * acc[g]);
            sum += acc[g], n++;
        }
    printf("| %-10s | %7.1f%% |\neval loss %.4f\n", "mean", n ? 100 * sum / n : 0.0, eval_loss);
    if (!nexp) return;
    printf("routing at %s (share of each language's questions by top expert):\n%-10s", site,
           "language");
    for (int e = 0; e < nexp; e++) printf(" e%-4d", e);
    printf("\n");
    for (int g = 0; g < MOLT_FEAT_GROUPS; g++) {
        double tot = 0;
        for (int e = 0; e < nexp; e++) tot += route[g * nexp + e];
        if (tot <= 0) continue;
        printf("%-10s", molt_feat_group_names[g]);
        for (int e = 0; e < nexp; e++) printf(" %.2f ", route[g * nexp + e] / tot);
        printf("\n");
    }
    printf("mutual information (language; expert): %.3f bits\n",
           molt_routing_mutual_info(route, MOLT_FEAT_GROUPS, nexp));
}

/* ---------------- the weights file's config ---------------- */

/* Keys that shape the model's parameters (molt_ckpt_key_shapes_weights):
 * model.mode and max_seq_len may differ, so an imported peft base can be
 * scored with mode = full, at any length RoPE allows. */
static int shapes_model(const char *section, const char *key) {
    return molt_ckpt_key_shapes_weights(section, key);
}

/* Next line of resolved INI text into buf; NULL at the end. */
static const char *next_line(const char *p, char *buf, size_t n) {
    if (!p || !*p) return NULL;
    size_t len = strcspn(p, "\n");
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), p);
    return p + len + (p[len] == '\n');
}

/* Compare two resolved configs key by key. molt_config_to_ini writes every
 * key of one table in order, so line i of both texts is the same key. A
 * shape key that differs is refused; another model/lora/moe key is noted. */
static int compare_configs(const char *fname, const molt_config *ours, const molt_config *theirs) {
    int rc = MOLT_OK;
    char *a = molt_config_to_ini(ours), *b = molt_config_to_ini(theirs);
    char la[1024], lb[1024], sec[64] = "";
    if (!a || !b) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot format the configuration");
    for (const char *pa = a, *pb = b; (pa = next_line(pa, la, sizeof la));) {
        if (!(pb = next_line(pb, lb, sizeof lb))) break;
        if (la[0] == '[') {
            sscanf(la, "[%63[^]]]", sec);
            continue;
        }
        if (!strcmp(la, lb)) continue;
        char key[128] = "";
        sscanf(la, "%127s", key);
        const char *va = strchr(la, '='), *vb = strchr(lb, '=');
        va = va ? va + 1 + (va[1] == ' ') : "", vb = vb ? vb + 1 + (vb[1] == ' ') : "";
        if (shapes_model(sec, key))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s was trained with %s.%s = %s; this config has %s: the "
                      "weights do not fit this model", fname, sec, key, vb, va);
        if (!strcmp(sec, "lora") || !strcmp(sec, "moe") || !strcmp(sec, "model"))
            printf("molt eval: note: %s.%s = %s here, %s in %s\n", sec, key, va, vb, fname);
    }
done:
    free(a), free(b);
    return rc;
}

/* Rank 0: the weights file must be a molt file whose config (when it has
 * one) agrees on the model's shape. Sets *step (-1 if absent). */
static int check_weights_file(const char *path, const molt_config *c, long *step) {
    int rc = MOLT_OK;
    hid_t file = -1;
    char *fmt = NULL, *text = NULL;
    molt_config theirs;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    *step = -1;
    if (H5Fis_hdf5(path) <= 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a readable HDF5 file", path);
    if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open", path);
    if (H5Aexists(file, "format") > 0) {
        MOLT_TRY(molt_h5_read_attr_str(file, path, "/", "format", &fmt));
        if (strcmp(fmt, MOLT_CKPT_FORMAT))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: format '%s' is not %s", path, fmt, MOLT_CKPT_FORMAT);
    }
    if (H5Aexists(file, "step") > 0)
        MOLT_TRY(molt_h5_read_attr_long(file, path, "/", "step", step));
    htri_t has = H5Aexists(file, "config");
    if (has < 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read the root attributes", path);
    if (has > 0) MOLT_TRY(molt_h5_read_attr_str(file, path, "/", "config", &text));
    if (!text || !text[0]) {
        printf("molt eval: note: %s has no config attribute: only each parameter's shape is "
               "checked\n", path);
        goto done;
    }
    char label[MOLT_PATH_MAX + 16];
    snprintf(label, sizeof label, "%s:/config", path);
    molt_config_defaults(&theirs);
    if ((rc = molt_config_load_string(&theirs, text, label)))
        MOLT_FAIL(rc, "%s: its config attribute does not parse with this molt", path);
    MOLT_TRY(compare_configs(path, c, &theirs));
done:
    if (file >= 0) H5Fclose(file);
    free(fmt), free(text);
    return rc;
}

/* ---------------- the run ---------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rank 0 reads and parses each file (reporting errors once) and broadcasts
 * its text; the other ranks parse the same text, which can then fail only
 * for want of memory: that rank ends the job (its peers are in a broadcast). */
static int load_files(const molt_eval_opts *o, int Tmax, MPI_Comm comm, int rank,
                      molt_mc_file *files) {
    int rc = MOLT_OK;
    char *text = NULL;
    for (int i = 0; i < o->n_tasks; i++) {
        size_t n = 0;
        long len = 0;
        if (rank == 0) {
            rc = molt_mc_read_text(o->tasks[i], &text, &n);
            if (!rc && n >= INT_MAX)
                rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s: %zu bytes; at most %d", o->tasks[i], n,
                                INT_MAX - 1);
            if (!rc) rc = molt_mc_parse(&files[i], o->tasks[i], text, n, Tmax);
            len = rc ? -rc : (long)n;
        }
        MOLT_MPI(MPI_Bcast(&len, 1, MPI_LONG, 0, comm));
        if (len < 0) {
            rc = (int)-len;
            goto done;
        }
        if (rank != 0 && !(text = molt_calloc_at((size_t)len + 1, 1, __FILE__, __LINE__)))
            molt_abort_job(comm, MOLT_ERR_INTERNAL);
        MOLT_TRY(molt_bcast_bytes(text, (size_t)len, 0, comm));
        if (rank != 0 && (rc = molt_mc_parse(&files[i], o->tasks[i], text, (size_t)len, Tmax)))
            molt_abort_job(comm, rc);
        free(text);
        text = NULL;
        if (rc) goto done;
    }
done:
    free(text);
    return rc;
}

/* The model at B x T with the weights of `path`; agreed over comm. */
static int model_with_weights(molt_model *m, const molt_config *c, int B, int T,
                              const molt_layout *lay, const char *path, MPI_Comm comm) {
    int rc = molt_model_create(m, c, B, T, lay);
    if (!rc) rc = molt_weights_load(path, m, 1);
    return molt_agree(comm, rc);
}

/* Sequences per forward: --batch, else the training micro-batch's tokens. */
static int forward_rows(const molt_config *c, const molt_eval_opts *o, int T) {
    if (o->batch > 0) return o->batch;
    long tokens = (long)(c->train.micro_batch ? c->train.micro_batch : c->train.batch_size) *
                  c->train.seq_len;
    long B = tokens / T;
    return B < 1 ? 1 : B > 4096 ? 4096 : (int)B;
}

static int run_choices(const molt_config *c, const molt_eval_opts *o, const molt_layout *lay,
                       MPI_Comm comm, const molt_mc_file *files, FILE *samples,
                       const char *samples_tmp) {
    int rc = MOLT_OK;
    molt_model m = {0};
    molt_mc_score *sc = NULL;
    const int Tmax = c->model.max_seq_len;
    const int T = molt_mc_longest(files, o->n_tasks, Tmax), B = forward_rows(c, o, T);
    const long S = molt_mc_count(files, o->n_tasks);
    if ((rc = model_with_weights(&m, c, B, T, lay, o->ckpt, comm))) goto done;
    if (!(sc = molt_calloc_at((size_t)S, sizeof *sc, __FILE__, __LINE__))) rc = MOLT_ERR_INTERNAL;
    if ((rc = molt_agree(comm, rc))) goto done;
    double t0 = now_s();
    rc = molt_mc_score_all(&m, files, o->n_tasks, comm, sc);
    if (rc) molt_abort_job(comm, rc);
    if (rc || lay->rank != 0) goto done;
    long dropped = 0, nex = 0;
    for (long s = 0; s < S; s++) dropped += sc[s].dropped > 0;
    for (int i = 0; i < o->n_tasks; i++) nex += files[i].n;
    printf("molt eval: %ld choices of %ld examples in %.2f s (%d per forward per rank, %d "
           "positions); %ld with context cut to model.max_seq_len %d\n",
           S, nex, now_s() - t0, B, T, dropped, Tmax);
    print_mc_table(files, o->n_tasks, sc);
    fflush(stdout);
    if (samples) {
        MOLT_TRY(molt_mc_write_samples(samples, samples_tmp, files, o->n_tasks, sc));
        printf("molt eval: per-example scores -> %s\n", o->log_samples);
    }
done:
    free(sc);
    molt_model_free(&m);
    return rc;
}

static int run_task_suite(const molt_config *c, const molt_eval_opts *o, const molt_layout *lay,
                          MPI_Comm comm) {
    int rc = MOLT_OK;
    molt_model m = {0};
    double acc[MOLT_NTASKS], loss = 0;
    /* train.seq_len, as the trainer's evaluation: examples scale to it */
    const int T = c->train.seq_len, B = forward_rows(c, o, T);
    double *route = NULL;
    char site[96] = "";
    if ((rc = model_with_weights(&m, c, B, T, lay, o->ckpt, comm))) goto done;
    if (m.dims.proj) { /* a feature model: per-language multiple choice */
        int nexp = molt_moe_task_routing(&m, NULL, NULL, site, sizeof site);
        if (nexp) MOLT_ALLOC(route, MOLT_NTASKS * nexp);
        rc = molt_eval_features(&m, c, comm, acc, &loss, route);
        if (rc) molt_abort_job(comm, rc);
        if (!rc && lay->rank == 0) {
            print_language_table(acc, loss, route, nexp, site);
            fflush(stdout);
        }
        goto done;
    }
    rc = molt_eval_tasks(&m, c, comm, acc, &loss, NULL);
    if (rc) molt_abort_job(comm, rc);
    if (!rc && lay->rank == 0) {
        print_task_table(acc, loss, c->eval.samples);
        fflush(stdout);
    }
done:
    free(route);
    molt_model_free(&m);
    return rc;
}

int molt_eval_run(const molt_config *c, const molt_eval_opts *o, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0, world = 1;
    molt_layout lay;
    molt_mc_file *files = NULL;
    FILE *samples = NULL;
    char tmp[MOLT_PATH_MAX + 8] = "";
    long step = -1;
    molt_layout_single(&lay);
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    MOLT_MPI(MPI_Comm_size(comm, &world));
    const int feat = c->model.projector != MOLT_PROJECTOR_NONE &&
                     (c->data.source == MOLT_DATA_FEATURES || c->data.source == MOLT_DATA_MMMB);
    const int suite = (c->data.source == MOLT_DATA_TASKS && c->eval.samples > 0 && c->eval.tasks) ||
                      (feat && (c->eval.samples > 0 || c->data.source == MOLT_DATA_FEATURES));
    /* checks every rank makes identically: only rank 0 prints */
    if (!o->n_tasks && !suite) {
        rc = MOLT_ERR_INPUT;
        if (rank == 0)
            MOLT_ERROR(rc, "molt eval: nothing to evaluate: give --tasks FILE.jsonl, or use "
                       "data.source = tasks (or mmmb_lite) with eval.samples > 0, or features");
        goto done;
    }
    if (o->n_tasks && c->model.projector != MOLT_PROJECTOR_NONE) {
        rc = MOLT_ERR_INPUT;
        if (rank == 0)
            MOLT_ERROR(rc, "molt eval --tasks scores text-only JSONL, but this model takes feature "
                       "tokens (model.projector = %s): evaluate it on its data.source (mmmb_lite "
                       "or features) without --tasks", "mlp2x_gelu");
        goto done;
    }
    if (c->parallel.ep > world || world % c->parallel.ep) {
        rc = MOLT_ERR_INPUT;
        if (rank == 0)
            MOLT_ERROR(rc, "parallel.ep = %d does not divide the %d ranks of the job "
                       "(ranks = dp x ep)", c->parallel.ep, world);
        goto done;
    }
    if (c->model.vocab_size < MOLT_TOK_MIN_VOCAB && o->n_tasks) {
        rc = MOLT_ERR_INPUT;
        if (rank == 0)
            MOLT_ERROR(rc, "model.vocab_size %d has no byte tokens and <bos>: scoring text "
                       "needs at least %d", c->model.vocab_size, MOLT_TOK_MIN_VOCAB);
        goto done;
    }
    MOLT_TRY(molt_layout_create(&lay, comm, c->parallel.ep));
    if (rank == 0) rc = check_weights_file(o->ckpt, c, &step);
    if ((rc = molt_agree(comm, rc))) goto done;
    MOLT_ALLOC(files, o->n_tasks);
    rc = load_files(o, c->model.max_seq_len, comm, rank, files);
    if ((rc = molt_agree(comm, rc))) goto done;
    if (rank == 0 && o->log_samples && o->n_tasks) { /* fail before the work, not after */
        snprintf(tmp, sizeof tmp, "%s.tmp", o->log_samples);
        if (!(samples = fopen(tmp, "w")))
            rc = MOLT_ERROR(MOLT_ERR_INPUT, "--log-samples: cannot create %s: %s", tmp,
                            strerror(errno));
    }
    if ((rc = molt_agree(comm, rc))) goto done;
    if (rank == 0) {
        char desc[512];
        molt_layout_describe(&lay, desc, sizeof desc);
        printf("molt eval: weights %s (step %ld); layout %s\n", o->ckpt, step, desc);
        if (c->moe.placement != MOLT_PLACE_NONE && c->moe.router == MOLT_ROUTER_EXPERT_CHOICE)
            printf("molt eval: note: moe.router = expert_choice ranks tokens across a whole "
                   "forward: scores depend on which sequences share it (--batch, ranks)\n");
        fflush(stdout);
    }
    if (o->n_tasks) rc = run_choices(c, o, &lay, comm, files, samples, tmp);
    if ((rc = molt_agree(comm, rc))) goto done;
    if (samples) {
        int bad = fclose(samples) != 0;
        samples = NULL;
        if (bad || rename(tmp, o->log_samples) != 0)
            rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot write %s: %s", o->log_samples,
                            strerror(errno));
    }
    if ((rc = molt_agree(comm, rc))) goto done;
    if (suite) rc = run_task_suite(c, o, &lay, comm);
    rc = molt_agree(comm, rc);
done:
    if (samples) fclose(samples);
    if (rc && tmp[0]) remove(tmp);
    for (int i = 0; files && i < o->n_tasks; i++) molt_mc_free(&files[i]);
    free(files);
    molt_layout_free(&lay);
    return rc;
}
