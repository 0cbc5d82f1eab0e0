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
/* mkdir -p. */
int molt_mkdirs(const char *path);
/* Write a whole text file atomically (path.tmp, rename). */
int molt_write_text(const char *path, const char *text);

#endif
