/* ckpt.c — training checkpoints (include/molt/ckpt.h). */
#define _POSIX_C_SOURCE 200809L
#include "molt/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/metrics.h"

void molt_ckpt_dir(const molt_config *c, const char *run_dir, char *out, size_t n) {
    const char *r = strncmp(run_dir, "runs/", 5) == 0 ? run_dir + 5 : run_dir;
    while (*r == '/') r++;
    snprintf(out, n, "%s/%s", c->checkpoint.dir, r);
}

/* ---------------- writing ---------------- */

/* fsync a file or directory by path. */
static int sync_path(const char *path, int dir) {
    int fd = open(path, dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot open %s to sync: %s", path, strerror(errno));
    int bad = fsync(fd) != 0;
    close(fd);
    if (bad) return MOLT_ERROR(MOLT_ERR_INTERNAL, "fsync %s: %s", path, strerror(errno));
    return MOLT_OK;
}

/* One float32 dataset, created by every rank; `mine` writes `data`, the
 * others take part with an empty selection (DESIGN §7: filtered datasets
 * need collective writes). */
static int write_collective(hid_t file, const char *fname, const char *path, const float *data,
                            int rows, int cols, int mine, hid_t dxpl) {
    int rc = MOLT_OK;
    hid_t ds = -1, mspace = -1, fspace = -1;
    MOLT_TRY(molt_h5_create_ds(file, fname, path, H5T_NATIVE_FLOAT, rows, cols, &ds));
    if (mine) {
        if (H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, dxpl, data) < 0)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write dataset %s", fname, path);
    } else {
        hsize_t one = 1;
        float dummy = 0;
        if ((mspace = H5Screate_simple(1, &one, NULL)) < 0 || H5Sselect_none(mspace) < 0 ||
            (fspace = H5Dget_space(ds)) < 0 || H5Sselect_none(fspace) < 0 ||
            H5Dwrite(ds, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, &dummy) < 0)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot take part in writing dataset %s", fname, path);
    }
done:
    if (fspace >= 0) H5Sclose(fspace);
    if (mspace >= 0) H5Sclose(mspace);
    if (ds >= 0) H5Dclose(ds);
    return rc;
}

/* The world rank that writes parameter i: dense ones round-robin over the
 * world; expert e's by one of its holders (ep rank e mod ep in expert group
 * i mod dp). */
static int writer_of(const molt_layout *L, const molt_param_desc *d, int i) {
    if (d->expert < 0) return i % L->size;
    return (i % L->dp) * L->ep + molt_expert_owner(d->expert, L->ep);
}

static int write_group_attrs(hid_t file, const char *fname, const char *group, const char *k1,
                             long v1, const char *k2, long v2, const char *note) {
    int rc = MOLT_OK;
    hid_t g = -1;
    if ((g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot create group %s", fname, group);
    MOLT_TRY(molt_h5_write_attr_long(g, fname, k1, v1));
    MOLT_TRY(molt_h5_write_attr_long(g, fname, k2, v2));
    MOLT_TRY(molt_h5_write_attr_str(g, fname, "note", note));
done:
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* Everything inside the open file (collective). */
/* The frozen base of a peft run lives in one file per distinct base,
 * base_<checksum>.h5 beside the step files, written once; step files link to
 * it (HDF5 external links, one per tensor). */
static int is_shared_base(const molt_param_desc *d) {
    return d->kind == MOLT_PARAM_BASE && !d->trainable;
}

/* FNV-1a 64 over the frozen base tensors (names and float bits) in registry
 * order: the base file's identity and checksum. */
static uint64_t fnv64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static int base_checksum(const molt_model *m, const molt_param_desc *desc, int nd, uint64_t *out) {
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < nd; i++) {
        if (!is_shared_base(&desc[i])) continue;
        const molt_param *p = molt_model_find(m, desc[i].path);
        if (!p) return MOLT_ERROR(MOLT_ERR_INTERNAL, "base tensor %s not held", desc[i].path);
        h = fnv64(h, p->path, strlen(p->path));
        h = fnv64(h, p->w, sizeof(float) * (size_t)p->rows * (p->cols ? p->cols : 1));
    }
    *out = h;
    return MOLT_OK;
}

#ifdef MOLT_FAULT_INJECTION
/* Test builds: MOLT_FAULT_CKPT_HOLD_STEP=n stops every rank inside step n's
 * checkpoint write (its .tmp file made, one dataset written) until the job is
 * killed; rank 0 first creates MOLT_FAULT_HOLD_FILE, so a test kills the job
 * exactly there. Ten minutes without the kill is an error. */
static int fault_ckpt_hold(const molt_layout *L, long step) {
    const char *hs = getenv("MOLT_FAULT_CKPT_HOLD_STEP"), *hf = getenv("MOLT_FAULT_HOLD_FILE");
    if (!hs || atol(hs) != step) return MOLT_OK;
    if (L->rank == 0 && hf) {
        int rc = molt_write_text(hf, "held inside a checkpoint write\n");
        if (rc) return rc;
    }
    for (int i = 0; i < 60000; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return MOLT_ERROR(MOLT_ERR_INTERNAL, "test hook: held in the step-%ld checkpoint write for 10 "
                      "minutes and nobody killed the job (MOLT_FAULT_CKPT_HOLD_STEP)", step);
}
#endif

static int write_contents(hid_t file, const char *fname, const molt_config *c, const char *text,
                          const molt_model *m, const molt_adamw *opt, long step, hid_t dxpl,
                          const char *base_name) {
    int rc = MOLT_OK;
    const molt_layout *L = &m->lay;
    molt_param_desc *desc = NULL;
    int nd = 0;
    char path[256];
    MOLT_TRY(molt_h5_write_attr_str(file, fname, "format", MOLT_CKPT_FORMAT));
    MOLT_TRY(molt_h5_write_attr_long(file, fname, "version", MOLT_CKPT_VERSION));
    MOLT_TRY(molt_h5_write_attr_str(file, fname, "kind", "checkpoint"));
    MOLT_TRY(molt_h5_write_attr_long(file, fname, "step", step));
    MOLT_TRY(molt_h5_write_attr_long(file, fname, "tokens_seen",
                                     step * (long)c->train.batch_size * c->train.seq_len));
    MOLT_TRY(molt_h5_write_attr_long(file, fname, "world_size", L->size));
    MOLT_TRY(molt_h5_write_attr_long(file, fname, "dp", L->dp));
    MOLT_TRY(molt_h5_write_attr_long(file, fname, "ep", L->ep));
    MOLT_TRY(molt_h5_write_attr_str(file, fname, "config", text));
    MOLT_TRY(write_group_attrs(file, fname, "/rng", "seed", (long)c->train.seed, "step", step,
                               "Philox4x32-10, counter-based: every draw is keyed by (seed, "
                               "purpose, step, global sample, position, layer, parameter), the "
                               "same on every rank; (seed, step) is the whole state"));
    MOLT_TRY(write_group_attrs(file, fname, "/data", "samples_seen",
                               step * (long)c->train.batch_size, "shuffle_seed",
                               (long)c->train.seed,
                               "step s reads global samples [s*batch_size, (s+1)*batch_size); "
                               "the sample index fixes epoch, shard and offset"));
    MOLT_TRY(molt_model_describe_all(m, &desc, &nd));
    for (int i = 0; i < nd; i++) {
        const molt_param_desc *d = &desc[i];
#ifdef MOLT_FAULT_INJECTION
        if (i == 1) MOLT_TRY(fault_ckpt_hold(L, step));
#endif
        if (base_name && is_shared_base(d)) {
            hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
            snprintf(path, sizeof path, "/%s", d->path);
            int bad = lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
                      H5Lcreate_external(base_name, path, file, path, lcpl, H5P_DEFAULT) < 0;
            if (lcpl >= 0) H5Pclose(lcpl);
            if (bad) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot link %s to %s", fname, path, base_name);
            continue;
        }
        const int mine = writer_of(L, d, i) == L->rank;
        const molt_param *p = mine ? molt_model_find(m, d->path) : NULL;
        if (mine && !p)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: rank %d was to write %s but does not hold it", fname,
                      L->rank, d->path);
        snprintf(path, sizeof path, "/%s", d->path);
        MOLT_TRY(write_collective(file, fname, path, p ? p->w : NULL, d->rows, d->cols, mine, dxpl));
        if (!d->trainable) continue;
        snprintf(path, sizeof path, "/optim/%s/m", d->path);
        MOLT_TRY(write_collective(file, fname, path, p ? opt->m + p->offset : NULL, d->rows,
                                  d->cols, mine, dxpl));
        snprintf(path, sizeof path, "/optim/%s/v", d->path);
        MOLT_TRY(write_collective(file, fname, path, p ? opt->v + p->offset : NULL, d->rows,
                                  d->cols, mine, dxpl));
    }
    hid_t g = H5Gopen2(file, "/optim", H5P_DEFAULT);
    if (g < 0) { /* nothing trains: still record the optimizer's step */
        g = H5Gcreate2(file, "/optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot create /optim", fname);
    }
    rc = molt_h5_write_attr_long(g, fname, "step", opt->t);
    if (!rc) rc = molt_h5_write_attr_double(g, fname, "lr", molt_lr_at(c, step > 0 ? step - 1 : 0));
    H5Gclose(g);
done:
    free(desc);
    return rc;
}

/* step numbers of the step_<N>.h5 files in dir, ascending (malloc'ed) */
static int list_steps(const char *dir, long **out, int *n) {
    int rc = MOLT_OK, cap = 0;
    DIR *d = opendir(dir);
    *out = NULL, *n = 0;
    if (!d) return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        char tail[8];
        if (sscanf(e->d_name, "step_%ld.h%7s", &s, tail) != 2 || strcmp(tail, "5")) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            long *bigger = realloc(*out, sizeof(long) * (size_t)cap);
            if (!bigger) MOLT_FAIL(MOLT_ERR_INTERNAL, "out of memory listing %s", dir);
            *out = bigger;
        }
        (*out)[(*n)++] = s;
    }
    for (int i = 1; i < *n; i++) /* insertion sort: a handful of files */
        for (int j = i; j > 0 && (*out)[j - 1] > (*out)[j]; j--) {
            long t = (*out)[j];
            (*out)[j] = (*out)[j - 1], (*out)[j - 1] = t;
        }
done:
    closedir(d);
    return rc;
}

/* Keep the newest checkpoint.keep steps and multiples of keep_every. */
static int prune(const molt_config *c, const char *dir) {
    int rc = MOLT_OK, n = 0;
    long *steps = NULL;
    char path[MOLT_PATH_MAX + 64];
    MOLT_TRY(list_steps(dir, &steps, &n));
    for (int i = 0; i < n - c->checkpoint.keep; i++) {
        if (c->checkpoint.keep_every > 0 && steps[i] % c->checkpoint.keep_every == 0) continue;
        snprintf(path, sizeof path, "%s/step_%08ld.h5", dir, steps[i]);
        if (remove(path) != 0 && errno != ENOENT)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot remove old checkpoint %s: %s", path, strerror(errno));
    }
done:
    free(steps);
    return rc;
}

/* Rank 0, once the step file is in place: make it current. */
static int publish(const molt_config *c, const char *dir, long step) {
    int rc = MOLT_OK;
    char latest[MOLT_PATH_MAX + 32], ltmp[MOLT_PATH_MAX + 40], name[64];
    MOLT_TRY(sync_path(dir, 1));
    snprintf(latest, sizeof latest, "%s/latest", dir);
    snprintf(ltmp, sizeof ltmp, "%s/latest.tmp", dir);
    snprintf(name, sizeof name, "step_%08ld.h5\n", step);
    FILE *f = fopen(ltmp, "w");
    if (!f) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot write %s: %s", ltmp, strerror(errno));
    int bad = fputs(name, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) != 0 || bad) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot write %s: %s", ltmp, strerror(errno));
    if (rename(ltmp, latest) != 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot rename %s to %s: %s", ltmp, latest, strerror(errno));
    MOLT_TRY(sync_path(dir, 1));
    MOLT_TRY(prune(c, dir));
done:
    return rc;
}

/* A failure while a collective file is open: peers may be inside a
 * collective call, so the job ends (what was published stays intact). */
static void abort_collective(const molt_layout *L, const char *what, int rc) {
    if (L->size <= 1) return;
    fprintf(stderr, "molt[rank %d]: writing %s failed: aborting the job\n", L->rank, what);
    fflush(stderr);
    MPI_Abort(L->world, rc);
}

/* Create `tmp` for collective writing over the world. */
static int open_parallel(const molt_layout *L, const char *tmp, hid_t *file, hid_t *dxpl) {
    int rc = MOLT_OK;
    hid_t fapl = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    *file = *dxpl = -1;
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
        H5Pset_fapl_mpio(fapl, L->world, MPI_INFO_NULL) < 0 ||
        H5Pset_all_coll_metadata_ops(fapl, 1) < 0 || H5Pset_coll_metadata_write(fapl, 1) < 0 ||
        (*dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 ||
        H5Pset_dxpl_mpio(*dxpl, H5FD_MPIO_COLLECTIVE) < 0 ||
        H5Pset_dxpl_mpio_collective_opt(*dxpl, H5FD_MPIO_INDIVIDUAL_IO) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot set up parallel HDF5", tmp);
    if ((*file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot create %s (parallel HDF5)", tmp);
done:
    if (fapl >= 0) H5Pclose(fapl);
    return rc;
}

/* Flush and close (collective); rank 0 then fsyncs and renames tmp to
 * final. Every rank returns rank 0's verdict. */
static int close_parallel(const molt_layout *L, hid_t file, const char *tmp, const char *final) {
    int rc = MOLT_OK;
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: flush failed", tmp);
    if (H5Fclose(file) < 0 && !rc) rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: close failed", tmp);
    if (rc) abort_collective(L, tmp, rc);
    if (L->rank == 0) {
        rc = sync_path(tmp, 0);
        if (!rc && rename(tmp, final) != 0)
            rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot rename %s to %s: %s", tmp, final,
                            strerror(errno));
        if (rc) remove(tmp);
    }
    MOLT_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, L->world));
done:
    return rc;
}

/* peft: make sure dir/base_<checksum>.h5 holds the frozen base (written
 * once per distinct base); its name goes to `name`, the checksum to `sum`. */
static int ensure_base(const char *dir, const char *config_text, const molt_model *m,
                       const molt_param_desc *desc, int nd, char *name, size_t n, char *sum,
                       size_t sn) {
    int rc = MOLT_OK, have = 0;
    const molt_layout *L = &m->lay;
    unsigned long long h = 0;
    hid_t file = -1, dxpl = -1;
    char final[MOLT_PATH_MAX + 64], tmp[MOLT_PATH_MAX + 72], path[256];
    if (L->rank == 0) {
        uint64_t hv = 0;
        rc = base_checksum(m, desc, nd, &hv);
        h = hv;
    }
    MOLT_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, L->world));
    MOLT_MPI(MPI_Bcast(&h, 1, MPI_UNSIGNED_LONG_LONG, 0, L->world));
    if (rc) goto done;
    snprintf(name, n, "base_%016llx.h5", h);
    snprintf(sum, sn, "fnv1a64:%016llx", h);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    if (L->rank == 0) have = access(final, R_OK) == 0;
    MOLT_MPI(MPI_Bcast(&have, 1, MPI_INT, 0, L->world));
    if (have) goto done;
    MOLT_TRY(open_parallel(L, tmp, &file, &dxpl));
    rc = molt_h5_write_attr_str(file, tmp, "format", MOLT_CKPT_FORMAT);
    if (!rc) rc = molt_h5_write_attr_long(file, tmp, "version", MOLT_CKPT_VERSION);
    if (!rc) rc = molt_h5_write_attr_str(file, tmp, "kind", "base");
    if (!rc) rc = molt_h5_write_attr_str(file, tmp, "checksum", sum);
    if (!rc) rc = molt_h5_write_attr_long(file, tmp, "step", 0);
    if (!rc) rc = molt_h5_write_attr_str(file, tmp, "config", config_text);
    for (int i = 0; !rc && i < nd; i++) {
        if (!is_shared_base(&desc[i])) continue;
        const int mine = i % L->size == L->rank;
        const molt_param *p = mine ? molt_model_find(m, desc[i].path) : NULL;
        snprintf(path, sizeof path, "/%s", desc[i].path);
        rc = write_collective(file, tmp, path, p ? p->w : NULL, desc[i].rows, desc[i].cols, mine,
                              dxpl);
    }
    if (rc) abort_collective(L, tmp, rc);
    if (rc) goto done;
    rc = close_parallel(L, file, tmp, final);
    file = -1;
done:
    if (file >= 0) H5Fclose(file);
    if (dxpl >= 0) H5Pclose(dxpl);
    return rc;
}

int molt_ckpt_save(const char *dir, const molt_config *c, const char *config_text,
                   const molt_model *m, const molt_adamw *opt, long step) {
    int rc = MOLT_OK, nd = 0;
    const molt_layout *L = &m->lay;
    char final[MOLT_PATH_MAX + 32], tmp[MOLT_PATH_MAX + 40], base[64] = "", sum[64] = "";
    hid_t dxpl = -1, file = -1;
    molt_param_desc *desc = NULL;
    snprintf(final, sizeof final, "%s/step_%08ld.h5", dir, step);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    if (L->rank == 0) rc = molt_mkdirs(dir);
    MOLT_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, L->world));
    if (rc) goto done;
    MOLT_TRY(molt_model_describe_all(m, &desc, &nd));
    const int peft = m->n_frozen > 0;
    if (peft) MOLT_TRY(ensure_base(dir, config_text, m, desc, nd, base, sizeof base, sum, sizeof sum));
    MOLT_TRY(open_parallel(L, tmp, &file, &dxpl));
    rc = write_contents(file, tmp, c, config_text, m, opt, step, dxpl, peft ? base : NULL);
    if (!rc && peft) rc = molt_h5_write_attr_str(file, tmp, "base_file", base);
    if (!rc && peft) rc = molt_h5_write_attr_str(file, tmp, "base_checksum", sum);
    if (rc) abort_collective(L, tmp, rc);
    if (rc) goto done;
    rc = close_parallel(L, file, tmp, final);
    file = -1;
    if (rc) goto done;
    if (L->rank == 0) rc = publish(c, dir, step);
    MOLT_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, L->world));
done:
    free(desc);
    if (file >= 0) H5Fclose(file);
    if (dxpl >= 0) H5Pclose(dxpl);
    return rc;
}

/* ---------------- reading ---------------- */

int molt_ckpt_latest(const char *dir, char *path, size_t n) {
    int rc = MOLT_OK;
    char lp[MOLT_PATH_MAX + 32], name[256] = "";
    snprintf(lp, sizeof lp, "%s/latest", dir);
    FILE *f = fopen(lp, "r");
    if (!f)
        return MOLT_ERROR(MOLT_ERR_INPUT, "no checkpoint to resume: %s: %s", lp, strerror(errno));
    if (!fgets(name, sizeof name, f)) rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s is empty", lp);
    fclose(f);
    if (rc) return rc;
    name[strcspn(name, "\r\n")] = '\0';
    if (!name[0] || strchr(name, '/'))
        return MOLT_ERROR(MOLT_ERR_INPUT, "%s: '%s' is not a checkpoint file name", lp, name);
    snprintf(path, n, "%s/%s", dir, name);
    return MOLT_OK;
}

int molt_ckpt_key_shapes_weights(const char *section, const char *key) {
    if (!strcmp(section, "model"))
        return strcmp(key, "init_from") && strcmp(key, "mode") && strcmp(key, "max_seq_len");
    if (!strcmp(section, "lora")) return !strcmp(key, "r") || !strcmp(key, "targets");
    if (!strcmp(section, "moe")) /* enable: whether the xattn module has weights */
        return !strcmp(key, "placement") || !strcmp(key, "targets") ||
               !strcmp(key, "num_experts") || !strcmp(key, "router") ||
               !strcmp(key, "expert_d_ff") || !strcmp(key, "enable");
    return 0;
}

/* Does the list value (e.g. moe.aux = "balance,pa") name `item`? */
static int list_has(const char *list, const char *item) {
    const size_t n = strlen(item);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        while (*p == ' ') p++;
        if (!strncmp(p, item, n) && (p[n] == ',' || p[n] == ' ' || p[n] == '\0')) return 1;
    }
    return 0;
}

/* A checkpoint only resumes under the same parameter set: the same weight
 * shapes; the same tensors (moe.aux gaining or losing pa, whose teacher is
 * stored; factor.train); the same trained set (model.mode, lora.train_norms:
 * which tensors have optimizer moments); and the same sequence bound.
 * theirs / ours: the file's and the config's values. Everything else may
 * change (listed). */
static int shapes_model(const char *section, const char *key, const char *theirs,
                        const char *ours) {
    if (!strcmp(section, "moe") && !strcmp(key, "aux"))
        return list_has(theirs, "pa") != list_has(ours, "pa");
    return molt_ckpt_key_shapes_weights(section, key) ||
           (!strcmp(section, "factor") && !strcmp(key, "train")) ||
           (!strcmp(section, "model") && (!strcmp(key, "mode") || !strcmp(key, "max_seq_len"))) ||
           (!strcmp(section, "lora") && !strcmp(key, "train_norms"));
}

/* One "key = value" line of resolved INI text (molt_config_to_ini) into
 * key and value; a "[section]" line into sec. Returns 1 for a key line. */
static int ini_line(const char **line, char *sec, char *key, char *val) {
    const char *end = strchr(*line, '\n');
    size_t len = end ? (size_t)(end - *line) : strlen(*line);
    char buf[1024];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, *line, len);
    buf[len] = '\0';
    *line = end ? end + 1 : NULL;
    if (sscanf(buf, "[%63[^]]]", sec) == 1 || buf[0] == '#') return 0;
    val[0] = '\0';
    if (sscanf(buf, "%127s =", key) != 1) return 0;
    sscanf(buf, "%*s = %899[^\n]", val);
    return 1;
}

/* The value of section.key in resolved INI text; 0 if absent. */
static int ini_value(const char *text, const char *section, const char *key, char *out) {
    char sec[64] = "", k[128], v[900];
    for (const char *line = text; line && *line;)
        if (ini_line(&line, sec, k, v) && !strcmp(sec, section) && !strcmp(k, key)) {
            memcpy(out, v, sizeof v);
            return 1;
        }
    return 0;
}

/* Compare the checkpoint's resolved config with ours, key by key. */
static int check_config(const char *fname, const char *theirs, const char *ours, int report) {
    int rc = MOLT_OK;
    char sec[64] = "", k[128], v[900], w[900];
    for (const char *line = ours; line && *line;) {
        if (!ini_line(&line, sec, k, v)) continue;
        int has = ini_value(theirs, sec, k, w);
        if (has && !strcmp(v, w)) continue;
        if (shapes_model(sec, k, has ? w : "", v))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s was trained with %s.%s = %s; this config has %s: the "
                      "checkpoint cannot resume under a different parameter set (the model's "
                      "shape, or which tensors exist and train)",
                      fname, sec, k, has ? w : "(unset)", v);
        if (report) printf("molt: resume: %s.%s changed: %s -> %s\n", sec, k, has ? w : "(unset)", v);
    }
done:
    return rc;
}

/* Open a molt file read-only and check its format and version; its step
 * and resolved config come back (config malloc'ed). */
static int open_checked(const char *path, hid_t *file, long *step, char **config) {
    int rc = MOLT_OK;
    char *fmt = NULL;
    long version = 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    *file = -1, *config = NULL;
    if (H5Fis_hdf5(path) <= 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a readable HDF5 file", path);
    if ((*file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open (truncated or damaged)", path);
    MOLT_TRY(molt_h5_read_attr_str(*file, path, "/", "format", &fmt));
    if (strcmp(fmt, MOLT_CKPT_FORMAT))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: format '%s' is not %s", path, fmt, MOLT_CKPT_FORMAT);
    MOLT_TRY(molt_h5_read_attr_long(*file, path, "/", "version", &version));
    if (version != MOLT_CKPT_VERSION)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: format version %ld; this molt reads version %d", path,
                  version, MOLT_CKPT_VERSION);
    MOLT_TRY(molt_h5_read_attr_long(*file, path, "/", "step", step));
    MOLT_TRY(molt_h5_read_attr_str(*file, path, "/", "config", config));
done:
    free(fmt);
    if (rc && *file >= 0) H5Fclose(*file), *file = -1;
    return rc;
}

/* The base file a step file links to sits in the step file's directory. */
static int check_base_file(const char *path, const char *base) {
    char full[MOLT_PATH_MAX + 96];
    const char *slash = strrchr(path, '/');
    if (strchr(base, '/'))
        return MOLT_ERROR(MOLT_ERR_INPUT, "%s: base_file '%s' is not a file name", path, base);
    snprintf(full, sizeof full, "%.*s%s", slash ? (int)(slash - path + 1) : 0, path, base);
    if (access(full, R_OK) != 0)
        return MOLT_ERROR(MOLT_ERR_INPUT, "%s: its frozen base weights %s are missing (%s): peft "
                          "checkpoints keep the base beside the step files",
                          path, full, strerror(errno));
    return MOLT_OK;
}

/* The base read through the links must be the one the checkpoint names. */
static int check_base_sum(const char *path, const char *base, const char *want,
                          const molt_model *m) {
    int rc = MOLT_OK, nd = 0;
    molt_param_desc *desc = NULL;
    uint64_t h = 0;
    char got[64];
    MOLT_TRY(molt_model_describe_all(m, &desc, &nd));
    MOLT_TRY(base_checksum(m, desc, nd, &h));
    snprintf(got, sizeof got, "fnv1a64:%016llx", (unsigned long long)h);
    if (strcmp(got, want))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: the base weights in %s have checksum %s, the checkpoint "
                  "recorded %s: a different base file", path, base, got, want);
done:
    free(desc);
    return rc;
}

int molt_ckpt_load(const char *path, const molt_config *c, molt_model *m, molt_adamw *opt,
                   long *step) {
    int rc = MOLT_OK;
    hid_t file = -1, g = -1;
    char *theirs = NULL, *ours = NULL, *base = NULL, *want = NULL, dpath[256];
    long t = 0;
    MOLT_TRY(open_checked(path, &file, step, &theirs));
    if (!(ours = molt_config_to_ini(c))) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot format the config");
    { /* keys newer than the checkpoint take their defaults, as when it was written */
        molt_config tc;
        molt_config_defaults(&tc);
        char *norm = NULL;
        MOLT_TRY(molt_config_load_string(&tc, theirs, path));
        if (!(norm = molt_config_to_ini(&tc))) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot format a config");
        free(theirs), theirs = norm;
    }
    MOLT_TRY(check_config(path, theirs, ours, m->lay.rank == 0));
    if (H5Aexists(file, "base_file") > 0) { /* peft: the frozen base is linked */
        MOLT_TRY(molt_h5_read_attr_str(file, path, "/", "base_file", &base));
        MOLT_TRY(molt_h5_read_attr_str(file, path, "/", "base_checksum", &want));
        MOLT_TRY(check_base_file(path, base));
    }
    for (int i = 0; i < m->n_params; i++) {
        const molt_param *p = &m->params[i];
        snprintf(dpath, sizeof dpath, "/%s", p->path);
        MOLT_TRY(molt_h5_read_f32(file, path, dpath, p->w, p->rows, p->cols));
        if (!p->trainable) continue;
        snprintf(dpath, sizeof dpath, "/optim/%s/m", p->path);
        MOLT_TRY(molt_h5_read_f32(file, path, dpath, opt->m + p->offset, p->rows, p->cols));
        snprintf(dpath, sizeof dpath, "/optim/%s/v", p->path);
        MOLT_TRY(molt_h5_read_f32(file, path, dpath, opt->v + p->offset, p->rows, p->cols));
    }
    if (base) MOLT_TRY(check_base_sum(path, base, want, m));
    if ((g = H5Gopen2(file, "/optim", H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: group /optim is missing", path);
    MOLT_TRY(molt_h5_read_attr_long(g, path, "/optim", "step", &t));
    opt->t = t;
done:
    if (g >= 0) H5Gclose(g);
    if (file >= 0) H5Fclose(file);
    free(theirs), free(ours), free(base), free(want);
    return rc;
}

/* ---------------- inspection and verification ---------------- */

typedef struct {
    const char *fname;
    FILE *out;      /* inspect: the tree goes here; NULL when verifying */
    int verify;
    long datasets;
    double bytes;
    int rc;
    float *buf;
    size_t cap;
} visit_state;

/* One dataset: print it (inspect) or read all of it (verify: the Fletcher32
 * filter checks every chunk). */
static herr_t visit_one(hid_t obj, const char *name, const H5O_info_t *info, void *vs) {
    visit_state *v = vs;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t ds = -1, space = -1, type = -1;
    hsize_t dims[8] = {0};
    int nd = 0;
    if ((ds = H5Dopen2(obj, name, H5P_DEFAULT)) < 0 || (space = H5Dget_space(ds)) < 0 ||
        (type = H5Dget_type(ds)) < 0 || (nd = H5Sget_simple_extent_ndims(space)) < 0 || nd > 8) {
        v->rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s: cannot open dataset /%s", v->fname, name);
        goto done;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    size_t n = 1, esz = H5Tget_size(type);
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    v->datasets++;
    v->bytes += (double)n * (double)esz;
    if (v->out) {
        char shape[128] = "";
        size_t at = 0;
        for (int i = 0; i < nd && at < sizeof shape; i++)
            at += (size_t)snprintf(shape + at, sizeof shape - at, i ? ", %llu" : "%llu",
                                   (unsigned long long)dims[i]);
        const char *tn = H5Tget_class(type) == H5T_FLOAT ? "float" : "int";
        fprintf(v->out, "  /%-70s %s%zu [%s] %zu B\n", name, tn, 8 * esz, shape, n * esz);
    }
    if (v->verify) {
        size_t need = n * (esz > sizeof(float) ? esz / sizeof(float) : 1);
        if (need > v->cap) {
            float *bigger = realloc(v->buf, sizeof(float) * (need ? need : 1));
            if (!bigger) {
                v->rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "out of memory reading /%s", name);
                goto done;
            }
            v->buf = bigger, v->cap = need;
        }
        if (H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->buf) < 0)
            v->rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s: dataset /%s is corrupt or truncated (checksum "
                               "or I/O failure)", v->fname, name);
    }
done:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    return v->rc ? -1 : 0;
}

/* Every parameter the checkpoint's own config implies, with its moments,
 * must be there with its shape (read_f32 checks shape and checksum). */
static int check_shapes(hid_t file, const char *fname, const char *config, const char *base_sum,
                        long *expected) {
    int rc = MOLT_OK, nd = 0;
    molt_config c;
    molt_model view;
    molt_param_desc *desc = NULL;
    float *buf = NULL;
    char path[256];
    memset(&view, 0, sizeof view);
    molt_config_defaults(&c);
    MOLT_TRY(molt_config_load_string(&c, config, "the checkpoint's config attribute"));
    MOLT_TRY(molt_dims_from_config(&view.dims, &c));
    view.dims.ep = 1;
    MOLT_TRY(molt_model_describe_all(&view, &desc, &nd));
    *expected = 0;
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < nd; i++) {
        const molt_param_desc *d = &desc[i];
        const size_t n = (size_t)d->rows * (d->cols ? d->cols : 1);
        free(buf);
        MOLT_ALLOC(buf, n);
        for (int k = 0; k < (d->trainable ? 3 : 1); k++) {
            if (k == 0) snprintf(path, sizeof path, "/%s", d->path);
            else snprintf(path, sizeof path, "/optim/%s/%s", d->path, k == 1 ? "m" : "v");
            MOLT_TRY(molt_h5_read_f32(file, fname, path, buf, d->rows, d->cols));
            (*expected)++;
        }
        if (is_shared_base(d)) h = fnv64(fnv64(h, d->path, strlen(d->path)), buf, sizeof(float) * n);
    }
    char got[64];
    snprintf(got, sizeof got, "fnv1a64:%016llx", (unsigned long long)h);
    if (base_sum && strcmp(got, base_sum))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: the linked base weights have checksum %s, the checkpoint "
                  "recorded %s: a different or damaged base file", fname, got, base_sum);
done:
    free(buf);
    free(desc);
    return rc;
}

int molt_ckpt_examine(const char *path, FILE *out, int verify) {
    int rc = MOLT_OK;
    hid_t file = -1;
    char *kind = NULL, *config = NULL, *base = NULL, *base_sum = NULL;
    long step = 0, expected = 0;
    visit_state v = {path, verify ? NULL : out, verify, 0, 0, MOLT_OK, NULL, 0};
    MOLT_TRY(open_checked(path, &file, &step, &config));
    int is_ckpt = H5Aexists(file, "kind") > 0 &&
                  !molt_h5_read_attr_str(file, path, "/", "kind", &kind) && !strcmp(kind, "checkpoint");
    if (!verify) {
        fprintf(out, "%s: format %s version %d, %s, step %ld\n", path, MOLT_CKPT_FORMAT,
                MOLT_CKPT_VERSION, is_ckpt ? "training checkpoint" : "weights", step);
        const char *keys[] = {"tokens_seen", "world_size", "dp", "ep"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            long x;
            if (H5Aexists(file, keys[i]) > 0 && !molt_h5_read_attr_long(file, path, "/", keys[i], &x))
                fprintf(out, "  %s = %ld\n", keys[i], x);
        }
    }
    if (H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, visit_one, &v) < 0 || v.rc) {
        rc = v.rc ? v.rc : MOLT_ERROR(MOLT_ERR_INPUT, "%s: cannot walk the file", path);
        goto done;
    }
    if (H5Aexists(file, "base_file") > 0) { /* peft: the frozen base is linked */
        MOLT_TRY(molt_h5_read_attr_str(file, path, "/", "base_file", &base));
        MOLT_TRY(molt_h5_read_attr_str(file, path, "/", "base_checksum", &base_sum));
        MOLT_TRY(check_base_file(path, base));
        if (!verify) fprintf(out, "  base_file = %s (%s)\n", base, base_sum);
    }
    if (verify && is_ckpt) MOLT_TRY(check_shapes(file, path, config, base_sum, &expected));
    if (verify)
        fprintf(out, "molt ckpt verify: %s: step %ld, %ld datasets (%.1f MB) read, checksums "
                     "OK%s\n", path, step, v.datasets, v.bytes / 1e6,
                is_ckpt ? ", every parameter and moment of its config present with its shape" : "");
    else
        fprintf(out, "%ld datasets, %.1f MB\n", v.datasets, v.bytes / 1e6);
done:
    if (file >= 0) H5Fclose(file);
    free(v.buf);
    free(kind), free(config), free(base), free(base_sum);
    return rc;
}
