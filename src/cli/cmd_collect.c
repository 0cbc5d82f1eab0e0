/* cmd_collect.c — `molt collect SWEEP_DIR [--seed-key KEY]`: a sweep's
 * results table.
 *
 * Reads SWEEP_DIR/points.tsv (written by launch/sweep: a header
 * `point<TAB>axis…`, one row per grid point) and, per point, SWEEP_DIR/<point>/
 * eval.json (final accuracies per task, mean, eval loss, trainable count),
 * metrics.jsonl (tokens and wall time, summed over requeued segments) and
 * status (written by launch/sweep-point). Points that differ only in the seed
 * axis form one row: mean ± sample std over the seeds that finished. Writes
 * SWEEP_DIR/results.md (printed too), results.csv and results.dat (the mean
 * accuracy per row, for launch/collect's bar chart). Points without a final
 * eval are listed by id, overrides and status — never dropped silently. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/err.h"
#include "molt/metrics.h"

enum { MAX_COLS = 32, MAX_METRICS = 40, CELL = 256 };

typedef struct {
    char cell[MAX_COLS][CELL]; /* the point's row of points.tsv */
    double v[MAX_METRICS];     /* NAN where the point has no such value */
    int ok;                    /* has a final eval */
    char status[CELL];
} point;

typedef struct {
    const char *dir, *seed_key;
    int ncol, nmet, np;
    unsigned char seed_col[MAX_COLS]; /* 1: a column averaged over (the seed axis) */
    char col[MAX_COLS][CELL];
    char met[MAX_METRICS][64];
    point *pts;
    int *group; /* point -> group id (first point of the group) */
} sweep;

static void collect_help(void) {
    printf("usage: molt collect SWEEP_DIR [--seed-key section.key[,section.key...]]\n\n"
           "The results table of a sweep run by launch/sweep: one row per grid point with\n"
           "mean ± std over seeds (the --seed-key axis, default train.seed; a list names\n"
           "keys zipped with the seed, e.g. train.seed,model.init_from) of every task's\n"
           "accuracy, their mean, eval loss, trainable parameters, tokens/s and wall time.\n"
           "Writes SWEEP_DIR/results.md (also printed), results.csv and results.dat; points\n"
           "that did not finish are listed with their status.\n");
}

/* Split a TSV line into cells; returns their count, or < 0 (reported). */
static int split_tsv(char *line, char out[MAX_COLS][CELL], const char *path, long lineno) {
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line;; n++) {
        char *tab = strchr(p, '\t');
        if (n == MAX_COLS)
            return -MOLT_ERROR(MOLT_ERR_INPUT, "%s:%ld: more than %d columns", path, lineno,
                               MAX_COLS);
        size_t len = tab ? (size_t)(tab - p) : strlen(p);
        if (len >= CELL)
            return -MOLT_ERROR(MOLT_ERR_INPUT, "%s:%ld: a cell longer than %d bytes", path, lineno,
                               CELL - 1);
        memcpy(out[n], p, len);
        out[n][len] = '\0';
        if (!tab) return n + 1;
        p = tab + 1;
    }
}

static int read_points(sweep *s) {
    int rc = MOLT_OK, cap = 0;
    char path[MOLT_PATH_MAX + 32], *line = NULL;
    size_t lcap = 0;
    long lineno = 0;
    FILE *f = NULL;
    snprintf(path, sizeof path, "%s/points.tsv", s->dir);
    if (!(f = fopen(path, "r")))
        MOLT_FAIL(MOLT_ERR_INPUT, "cannot open %s: %s: is %s a sweep directory?", path,
                  strerror(errno), s->dir);
    while (getline(&line, &lcap, f) > 0) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (s->ncol == 0) {
            int n = split_tsv(line, s->col, path, lineno);
            if (n < 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: bad header", path);
            if (strcmp(s->col[0], "point") != 0)
                MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: the header must start with 'point'", path,
                          lineno);
            s->ncol = n;
            continue;
        }
        if (s->np == cap) {
            cap = cap ? 2 * cap : 64;
            point *p = realloc(s->pts, sizeof *p * (size_t)cap);
            if (!p) MOLT_FAIL(MOLT_ERR_INTERNAL, "out of memory reading %s", path);
            s->pts = p;
        }
        point *p = &s->pts[s->np];
        memset(p, 0, sizeof *p);
        int n = split_tsv(line, p->cell, path, lineno);
        if (n < 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: bad row", path);
        if (n != s->ncol)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%ld: %d cells, the header has %d", path, lineno, n,
                      s->ncol);
        s->np++;
    }
    if (ferror(f)) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot read %s: %s", path, strerror(errno));
    if (s->ncol == 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s is empty", path);
    memset(s->seed_col, 0, sizeof s->seed_col);
    for (int c = 1; c < s->ncol; c++) { /* is col[c] one of the comma-separated seed keys? */
        size_t n = strlen(s->col[c]);
        for (const char *k = s->seed_key; k && *k;) {
            const char *end = strchr(k, ',');
            size_t len = end ? (size_t)(end - k) : strlen(k);
            if (len == n && !strncmp(k, s->col[c], n)) s->seed_col[c] = 1;
            k = end ? end + 1 : NULL;
        }
    }
done:
    free(line);
    if (f) fclose(f);
    return rc;
}

static int metric_index(sweep *s, const char *name) {
    for (int m = 0; m < s->nmet; m++)
        if (!strcmp(s->met[m], name)) return m;
    if (s->nmet == MAX_METRICS) return -1;
    snprintf(s->met[s->nmet], sizeof s->met[0], "%s", name);
    return s->nmet++;
}

/* Tokens trained and wall seconds from metrics.jsonl: `elapsed` restarts at
 * each requeued segment, so the wall time is the sum of the segments' last
 * values. */
static int run_speed(const char *run_dir, double *tokens, double *wall) {
    int rc = MOLT_OK;
    cJSON *lines = NULL, *o;
    double prev = 0, sum = 0;
    *tokens = NAN, *wall = NAN;
    MOLT_TRY(molt_metrics_read(run_dir, &lines));
    cJSON_ArrayForEach(o, lines) {
        const cJSON *el = cJSON_GetObjectItemCaseSensitive(o, "elapsed");
        const cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokens");
        if (!cJSON_IsNumber(el) || !cJSON_IsNumber(tk)) continue;
        if (el->valuedouble < prev) sum += prev;
        prev = el->valuedouble;
        *tokens = tk->valuedouble;
    }
    *wall = sum + prev;
done:
    cJSON_Delete(lines);
    return rc;
}

static void read_status(const char *pdir, char *out, size_t n) {
    char path[MOLT_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/status", pdir);
    FILE *f = fopen(path, "r");
    snprintf(out, n, "not run");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

/* One point's numbers: every number under eval.json's "tasks" (the task
 * accuracies, mean, eval_loss), then trainable, tok_s, wall_s. */
static int read_point(sweep *s, point *p) {
    int rc = MOLT_OK;
    char pdir[MOLT_PATH_MAX], path[MOLT_PATH_MAX + 16];
    cJSON *ev = NULL, *it;
    for (int m = 0; m < MAX_METRICS; m++)
        p->v[m] = NAN;
    snprintf(pdir, sizeof pdir, "%s/%s", s->dir, p->cell[0]);
    read_status(pdir, p->status, sizeof p->status);
    snprintf(path, sizeof path, "%s/eval.json", pdir);
    FILE *probe = fopen(path, "r");
    if (!probe) return MOLT_OK; /* not finished: listed, not an error */
    fclose(probe);
    MOLT_TRY(molt_json_load(path, &ev));
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(ev, "tasks");
    cJSON_ArrayForEach(it, tasks) {
        if (!cJSON_IsNumber(it)) continue;
        int m = metric_index(s, it->string);
        if (m >= 0) p->v[m] = it->valuedouble;
    }
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(ev, "trainable");
    double tokens = NAN, wall = NAN;
    MOLT_TRY(run_speed(pdir, &tokens, &wall));
    int mt = metric_index(s, "trainable"), ms = metric_index(s, "tok_s"),
        mw = metric_index(s, "wall_s");
    if (mt < 0 || ms < 0 || mw < 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: too many metrics", path);
    p->v[mt] = cJSON_IsNumber(tr) ? tr->valuedouble : NAN;
    p->v[ms] = wall > 0 ? tokens / wall : NAN;
    p->v[mw] = wall;
    p->ok = 1;
done:
    cJSON_Delete(ev);
    return rc;
}

/* Points that differ only in the seed column share a group: its id is the
 * index of its first point. */
static void group_points(sweep *s) {
    for (int i = 0; i < s->np; i++) {
        s->group[i] = i;
        for (int j = 0; j < i && s->group[i] == i; j++) {
            int same = 1;
            for (int c = 1; c < s->ncol && same; c++)
                if (!s->seed_col[c] && strcmp(s->pts[i].cell[c], s->pts[j].cell[c]) != 0) same = 0;
            if (same) s->group[i] = s->group[j];
        }
    }
}

/* Mean and sample std of metric m over the finished points of group g. */
static int group_stats(const sweep *s, int g, int m, double *mean, double *sd) {
    double sum = 0, sq = 0;
    int n = 0;
    for (int i = 0; i < s->np; i++)
        if (s->group[i] == g && s->pts[i].ok && !isnan(s->pts[i].v[m])) sum += s->pts[i].v[m], n++;
    *mean = n ? sum / n : NAN;
    for (int i = 0; i < s->np; i++)
        if (s->group[i] == g && s->pts[i].ok && !isnan(s->pts[i].v[m]))
            sq += (s->pts[i].v[m] - *mean) * (s->pts[i].v[m] - *mean);
    *sd = n > 1 ? sqrt(sq / (n - 1)) : 0;
    return n;
}

static int group_size(const sweep *s, int g, int *finished) {
    int n = 0;
    *finished = 0;
    for (int i = 0; i < s->np; i++)
        if (s->group[i] == g) n++, *finished += s->pts[i].ok;
    return n;
}

/* A config column shows the file's name without directory and .ini. */
static const char *show_cell(const sweep *s, int c, const char *v, char *buf, size_t n) {
    if (strcmp(s->col[c], "config") != 0) return v;
    const char *b = strrchr(v, '/');
    snprintf(buf, n, "%s", b ? b + 1 : v);
    size_t l = strlen(buf);
    if (l > 4 && !strcmp(buf + l - 4, ".ini")) buf[l - 4] = '\0';
    return buf;
}

static void format_value(const char *name, double mean, double sd, int n, char *out, size_t len) {
    int acc = strcmp(name, "eval_loss") && strcmp(name, "trainable") && strcmp(name, "tok_s") &&
              strcmp(name, "wall_s");
    double k = acc ? 100 : 1;
    const char *fmt = acc                          ? "%.1f"
                      : !strcmp(name, "eval_loss") ? "%.4f"
                      : !strcmp(name, "wall_s")    ? "%.1f"
                                                   : "%.0f";
    char a[48], b[48];
    if (n == 0 || isnan(mean)) {
        snprintf(out, len, "–");
        return;
    }
    snprintf(a, sizeof a, fmt, k * mean);
    if (n < 2 || !strcmp(name, "trainable")) {
        snprintf(out, len, "%s", a);
        return;
    }
    snprintf(b, sizeof b, fmt, k * sd);
    snprintf(out, len, "%s ± %s", a, b);
}

static int write_tables(sweep *s, FILE *md, FILE *csv, FILE *dat) {
    char buf[CELL], cell[128];
    int missing = 0;
    /* Markdown: group columns, n, then every metric */
    fprintf(md, "|");
    for (int c = 1; c < s->ncol; c++)
        if (!s->seed_col[c]) fprintf(md, " %s |", s->col[c]);
    fprintf(md, " n |");
    for (int m = 0; m < s->nmet; m++)
        fprintf(md, " %s |", s->met[m]);
    fprintf(md, "\n|");
    for (int c = 1; c < s->ncol; c++)
        if (!s->seed_col[c]) fprintf(md, "---|");
    fprintf(md, "--:|");
    for (int m = 0; m < s->nmet; m++)
        fprintf(md, "--:|");
    fprintf(md, "\n");
    for (int c = 1; c < s->ncol; c++)
        if (!s->seed_col[c]) fprintf(csv, "%s,", s->col[c]);
    fprintf(csv, "n,points");
    for (int m = 0; m < s->nmet; m++)
        fprintf(csv, ",%s,%s_std", s->met[m], s->met[m]);
    fprintf(csv, "\n");
    for (int g = 0; g < s->np; g++) {
        if (s->group[g] != g) continue;
        int fin = 0, tot = group_size(s, g, &fin);
        char label[512] = "";
        fprintf(md, "|");
        for (int c = 1; c < s->ncol; c++) {
            if (s->seed_col[c]) continue;
            const char *v = show_cell(s, c, s->pts[g].cell[c], buf, sizeof buf);
            fprintf(md, " %s |", v);
            fprintf(csv, "%s,", v);
            size_t l = strlen(label);
            snprintf(label + l, sizeof label - l, "%s%s", l ? " " : "", v);
        }
        fprintf(md, " %d%s |", fin, fin < tot ? "*" : "");
        fprintf(csv, "%d,%d", fin, tot);
        for (int m = 0; m < s->nmet; m++) {
            double mean, sd;
            int n = group_stats(s, g, m, &mean, &sd);
            format_value(s->met[m], mean, sd, n, cell, sizeof cell);
            fprintf(md, " %s |", cell);
            if (n)
                fprintf(csv, ",%.6g,%.6g", mean, sd);
            else
                fprintf(csv, ",,");
            if (!strcmp(s->met[m], "mean") && n)
                fprintf(dat, "\"%s\"\t%.4f\t%.4f\n", label, 100 * mean, 100 * sd);
        }
        fprintf(md, "\n");
        fprintf(csv, "\n");
    }
    for (int i = 0; i < s->np; i++)
        missing += !s->pts[i].ok;
    if (missing) {
        fprintf(md, "\n%d of %d points have no final eval (n* = rows they are missing from):\n",
                missing, s->np);
        for (int i = 0; i < s->np; i++) {
            if (s->pts[i].ok) continue;
            fprintf(md, "- %s (", s->pts[i].cell[0]);
            for (int c = 1; c < s->ncol; c++)
                fprintf(md, "%s%s=%s", c > 1 ? ", " : "", s->col[c],
                        show_cell(s, c, s->pts[i].cell[c], buf, sizeof buf));
            fprintf(md, "): %s\n", s->pts[i].status);
        }
    }
    return missing;
}

static int write_outputs(sweep *s) {
    int rc = MOLT_OK;
    char path[3][MOLT_PATH_MAX + 32];
    const char *names[3] = {"results.md", "results.csv", "results.dat"};
    FILE *f[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s", s->dir, names[i]);
        if (!(f[i] = fopen(path[i], "w")))
            MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot write %s: %s", path[i], strerror(errno));
    }
    fprintf(f[0], "# %s\n\n", s->dir);
    int missing = write_tables(s, f[0], f[1], f[2]);
    for (int i = 0; i < 3; i++) {
        int bad = ferror(f[i]) || fclose(f[i]) != 0;
        f[i] = NULL;
        if (bad) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot write %s: %s", path[i], strerror(errno));
    }
    FILE *in = fopen(path[0], "r"); /* print what was written */
    if (!in) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot reopen %s: %s", path[0], strerror(errno));
    char line[4096];
    while (fgets(line, sizeof line, in))
        fputs(line, stdout);
    fclose(in);
    printf("\nmolt collect: %d points, %d without a final eval -> %s, %s\n", s->np, missing,
           path[0], path[1]);
done:
    for (int i = 0; i < 3; i++)
        if (f[i]) fclose(f[i]);
    return rc;
}

int molt_cmd_collect(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    sweep s;
    memset(&s, 0, sizeof s);
    s.seed_key = "train.seed";
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank != 0) return MOLT_OK; /* a single-process command */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            collect_help();
            return MOLT_OK;
        } else if (!strcmp(argv[i], "--seed-key") && i + 1 < argc) {
            s.seed_key = argv[++i];
        } else if (argv[i][0] == '-' || s.dir) {
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "molt collect: unexpected argument '%s' (molt collect --help)", argv[i]);
        } else {
            s.dir = argv[i];
        }
    }
    if (!s.dir) MOLT_FAIL(MOLT_ERR_INPUT, "usage: molt collect SWEEP_DIR (molt collect --help)");
    MOLT_TRY(read_points(&s));
    MOLT_ALLOC(s.group, s.np ? s.np : 1);
    for (int i = 0; i < s.np; i++)
        MOLT_TRY(read_point(&s, &s.pts[i]));
    group_points(&s);
    MOLT_TRY(write_outputs(&s));
done:
    free(s.pts);
    free(s.group);
    return rc;
}
