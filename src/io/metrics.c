/* metrics.c — see include/molt/metrics.h. */
#define _POSIX_C_SOURCE 200809L
#include "molt/metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "molt/err.h"

int molt_mkdirs(const char *path) {
    char buf[MOLT_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0) return MOLT_OK;
    if (n >= sizeof buf) return MOLT_ERROR(MOLT_ERR_INPUT, "path too long: %s", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot create directory %s: %s", buf,
                              strerror(errno));
        buf[i] = c;
    }
    return MOLT_OK;
}

int molt_metrics_open(molt_metrics *mt, const char *run_dir, int append) {
    int rc = MOLT_OK;
    memset(mt, 0, sizeof *mt);
    MOLT_TRY(molt_mkdirs(run_dir));
    snprintf(mt->path, sizeof mt->path, "%s/metrics.jsonl", run_dir);
    if (!(mt->f = fopen(mt->path, append ? "a" : "w")))
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot open %s: %s", mt->path, strerror(errno));
done:
    return rc;
}

int molt_metrics_resume(molt_metrics *mt, const char *run_dir, long last_step) {
    int rc = MOLT_OK;
    FILE *in = NULL, *out = NULL;
    char tmp[MOLT_PATH_MAX + 48], *line = NULL;
    size_t cap = 0;
    memset(mt, 0, sizeof *mt);
    MOLT_TRY(molt_mkdirs(run_dir));
    snprintf(mt->path, sizeof mt->path, "%s/metrics.jsonl", run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", mt->path);
    if ((in = fopen(mt->path, "r"))) { /* keep the lines up to the checkpoint's step */
        if (!(out = fopen(tmp, "w")))
            MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot write %s: %s", tmp, strerror(errno));
        while (getline(&line, &cap, in) > 0) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *st = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
            int keep = cJSON_IsNumber(st) && st->valuedouble <= (double)last_step;
            cJSON_Delete(o);
            if (keep && fputs(line, out) < 0)
                MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot write %s: %s", tmp, strerror(errno));
        }
        int bad = fclose(out) != 0;
        out = NULL;
        if (bad || rename(tmp, mt->path) != 0)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot replace %s: %s", mt->path, strerror(errno));
    }
    if (!(mt->f = fopen(mt->path, "a")))
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot open %s: %s", mt->path, strerror(errno));
done:
    free(line);
    if (in) fclose(in);
    if (out) fclose(out);
    return rc;
}

int molt_metrics_write(molt_metrics *mt, const cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot format a metrics line");
    int bad = fprintf(mt->f, "%s\n", s) < 0 || fflush(mt->f) != 0;
    cJSON_free(s);
    if (bad) return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot write %s: %s", mt->path, strerror(errno));
    return MOLT_OK;
}

int molt_metrics_close(molt_metrics *mt) {
    int rc = MOLT_OK;
    if (mt->f && fclose(mt->f) != 0)
        rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot close %s: %s", mt->path, strerror(errno));
    mt->f = NULL;
    return rc;
}

int molt_metrics_read(const char *run_dir, cJSON **out) {
    int rc = MOLT_OK;
    char path[MOLT_PATH_MAX + 32], *line = NULL;
    size_t cap = 0;
    long lineno = 0, bad_line = 0;
    FILE *f = NULL;
    *out = NULL;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    if (!(f = fopen(path, "r")))
        MOLT_FAIL(MOLT_ERR_INPUT, "cannot open %s: %s", path, strerror(errno));
    if (!(*out = cJSON_CreateArray()))
        MOLT_FAIL(MOLT_ERR_INTERNAL, "out of memory reading %s", path);
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (bad_line) /* only the last line may be torn */
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: not a JSON object", path, bad_line);
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            bad_line = lineno;
            continue;
        }
        cJSON_AddItemToArray(*out, o);
    }
    if (ferror(f)) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot read %s: %s", path, strerror(errno));
done:
    free(line);
    if (f) fclose(f);
    if (rc) cJSON_Delete(*out), *out = NULL;
    return rc;
}

int molt_json_load(const char *path, cJSON **out) {
    int rc = MOLT_OK;
    char *text = NULL;
    FILE *f = NULL;
    *out = NULL;
    if (!(f = fopen(path, "rb")))
        MOLT_FAIL(MOLT_ERR_INPUT, "cannot open %s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot seek %s", path);
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot size %s", path);
    MOLT_ALLOC(text, n + 1);
    if ((long)fread(text, 1, (size_t)n, f) != n)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot read %s: %s", path, strerror(errno));
    const char *end = NULL;
    if (!(*out = cJSON_ParseWithOpts(text, &end, 0)))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: bad JSON at byte %ld", path, end ? (long)(end - text) : 0L);
done:
    free(text);
    if (f) fclose(f);
    return rc;
}

int molt_write_text(const char *path, const char *text) {
    char tmp[MOLT_PATH_MAX + 40];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot open %s: %s", tmp, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot write %s: %s", path, strerror(errno));
    }
    return MOLT_OK;
}
