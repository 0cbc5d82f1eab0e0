/* metrics.h — metrics.jsonl: one JSON object per logged step, appended and
 * flushed line by line so a killed job loses at most the line in flight. */
#ifndef MOLT_METRICS_H
#define MOLT_METRICS_H
#include <cjson/cJSON.h>
#include <stdio.h>

#include "molt/config.h"

typedef struct {
    FILE *f;
    char path[MOLT_PATH_MAX + 32];
} molt_metrics;

/* mkdir -p run_dir; open run_dir/metrics.jsonl (truncate, or append). */
int molt_metrics_open(molt_metrics *mt, const char *run_dir, int append);
/* Resuming at step `last_step`: keep the lines of run_dir/metrics.jsonl up
 * to that step (a killed run may have logged further), then append. */
int molt_metrics_resume(molt_metrics *mt, const char *run_dir, long last_step);
/* Write obj as one line and flush. Does not take ownership of obj. */
int molt_metrics_write(molt_metrics *mt, const cJSON *obj);
int molt_metrics_close(molt_metrics *mt);
/* Read run_dir/metrics.jsonl into a JSON array of its lines (*out, owned by
 * the caller). A torn last line (a killed job) is skipped; any other line
 * that does not parse is an error naming the file and line. */
int molt_metrics_read(const char *run_dir, cJSON **out);
/* Parse a whole JSON file into *out (owned by the caller); errors name the
 * file and, for bad JSON, the byte offset. */
int molt_json_load(const char *path, cJSON **out);
/* mkdir -p. */
int molt_mkdirs(const char *path);
/* Write a whole text file atomically (path.tmp, rename). */
int molt_write_text(const char *path, const char *text);

#endif
