/* cmd_metrics.c — `molt metrics RUN_DIR loss|sites|load N|routing`: a run's
 * logs as whitespace-separated columns for gnuplot (launch/plot) or awk.
 *   loss      step, LM loss, aux loss ("?" where a run has none)
 *   sites     the MoE sites logged, one per line, in order
 *   load N    site N's expert load: "step expert share" rows, a blank line
 *             after each step (gnuplot's grid format for heatmaps)
 *   routing   eval.json's task (or language) x expert table, with its mutual
 *             information when recorded, as shares of each task's
 *             choices: a header row of experts, then "task share…" rows
 * Reads metrics.jsonl / eval.json only; prints to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/err.h"
#include "molt/metrics.h"

static void metrics_help(void) {
    printf("usage: molt metrics RUN_DIR loss|sites|load SITE|routing\n\n"
           "Prints a run's logs (RUN_DIR/metrics.jsonl, eval.json) as columns:\n"
           "  loss      step, LM loss, aux loss ('?' when the run has no MoE)\n"
           "  sites     the MoE sites in metrics.jsonl, one per line\n"
           "  load N    expert load of site N (0-based): 'step expert share' rows, a\n"
           "            blank line after each step\n"
           "  routing   eval.json's task x expert routing, as shares of each task\n");
}

static int print_loss(const cJSON *lines) {
    const cJSON *o;
    printf("# step loss aux_loss\n");
    cJSON_ArrayForEach(o, lines) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "loss");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "aux_loss");
        if (!cJSON_IsNumber(st) || !cJSON_IsNumber(l)) continue;
        printf("%ld %.8g", (long)st->valuedouble, l->valuedouble);
        if (cJSON_IsNumber(a))
            printf(" %.8g\n", a->valuedouble);
        else
            printf(" ?\n");
    }
    return MOLT_OK;
}

/* The sites of the first line that has any. */
static const cJSON *first_sites(const cJSON *lines) {
    const cJSON *o;
    cJSON_ArrayForEach(o, lines) {
        const cJSON *moe = cJSON_GetObjectItemCaseSensitive(o, "moe");
        if (cJSON_GetArraySize(moe) > 0) return moe;
    }
    return NULL;
}

static int print_sites(const cJSON *lines) {
    const cJSON *s;
    cJSON_ArrayForEach(s, first_sites(lines)) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "site");
        printf("%s\n", cJSON_IsString(name) ? name->valuestring : "?");
    }
    return MOLT_OK;
}

static int print_load(const cJSON *lines, const char *run_dir, const char *which) {
    char *end = NULL;
    long n = strtol(which, &end, 10);
    int nsites = cJSON_GetArraySize(first_sites(lines));
    if (!end || *end || n < 0 || n >= nsites)
        return MOLT_ERROR(MOLT_ERR_INPUT, "molt metrics: site '%s' of %s: expected 0..%d", which,
                          run_dir, nsites - 1);
    const cJSON *o;
    cJSON_ArrayForEach(o, lines) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *site = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "moe"), (int)n);
        const cJSON *load = cJSON_GetObjectItemCaseSensitive(site, "load"), *v;
        if (!cJSON_IsNumber(st) || !cJSON_IsArray(load)) continue;
        int e = 0;
        cJSON_ArrayForEach(v, load) printf("%ld %d %.6g\n", (long)st->valuedouble, e++,
                                           cJSON_IsNumber(v) ? v->valuedouble : 0.0);
        printf("\n");
    }
    return MOLT_OK;
}

static int print_routing(const char *run_dir) {
    int rc = MOLT_OK;
    char path[MOLT_PATH_MAX + 16];
    cJSON *ev = NULL;
    snprintf(path, sizeof path, "%s/eval.json", run_dir);
    MOLT_TRY(molt_json_load(path, &ev));
    const cJSON *r =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "tasks"), "routing");
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(r, "tasks"), *row, *v;
    if (!cJSON_IsObject(tasks) || !tasks->child)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s has no routing table (a run without MoE experts?)", path);
    const cJSON *site = cJSON_GetObjectItemCaseSensitive(r, "site");
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(r, "mutual_information_bits");
    printf("# %s", cJSON_IsString(site) ? site->valuestring : "");
    if (cJSON_IsNumber(mi)) printf(", I(row; expert) = %.3f bits", mi->valuedouble);
    printf("\ntask");
    for (int e = 0; e < cJSON_GetArraySize(tasks->child); e++)
        printf(" e%d", e);
    printf("\n");
    cJSON_ArrayForEach(row, tasks) {
        double tot = 0;
        cJSON_ArrayForEach(v, row) tot += cJSON_IsNumber(v) ? v->valuedouble : 0;
        printf("%s", row->string);
        cJSON_ArrayForEach(v, row)
            printf(" %.4f", tot > 0 && cJSON_IsNumber(v) ? v->valuedouble / tot : 0);
        printf("\n");
    }
done:
    cJSON_Delete(ev);
    return rc;
}

int molt_cmd_metrics(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    cJSON *lines = NULL;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank != 0) return MOLT_OK; /* a single-process command */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            metrics_help();
            return MOLT_OK;
        }
    const char *what = argc > 2 ? argv[2] : "";
    int want_site = !strcmp(what, "load");
    if (argc != 3 + want_site ||
        (strcmp(what, "loss") && strcmp(what, "sites") && !want_site && strcmp(what, "routing")))
        MOLT_FAIL(MOLT_ERR_INPUT, "usage: molt metrics RUN_DIR loss|sites|load N|routing "
                                  "(molt metrics --help)");
    if (!strcmp(what, "routing")) {
        MOLT_TRY(print_routing(argv[1]));
    } else {
        MOLT_TRY(molt_metrics_read(argv[1], &lines));
        if (!strcmp(what, "loss"))
            MOLT_TRY(print_loss(lines));
        else if (!strcmp(what, "sites"))
            MOLT_TRY(print_sites(lines));
        else
            MOLT_TRY(print_load(lines, argv[1], argv[3]));
    }
    if (fflush(stdout) != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "molt metrics: cannot write stdout");
done:
    cJSON_Delete(lines);
    return rc;
}
