/* h5io.c — see include/molt/h5io.h. */
#include "molt/h5io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"

/* HDF5 prints its own error stack on failure; molt reports instead. */
static void quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int molt_h5_create_ds(hid_t file, const char *fname, const char *path, hid_t type, int rows,
                      int cols, hid_t *out) {
    int rc = MOLT_OK;
    hid_t space = -1, lcpl = -1, dcpl = -1;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols}, chunk[2];
    int rank = cols > 0 ? 2 : 1;
    quiet();
    *out = -1;
    /* ~1 MiB chunks of whole rows keep checksumming cheap and reads
     * contiguous. The row count divides the tensor where a divisor of at
     * least half the budget exists: a filtered partial last chunk is stored
     * at full size (measured 15% padding on a 768-wide model otherwise). */
    hsize_t row_bytes = (hsize_t)(cols > 0 ? cols : 1) * 4;
    chunk[0] = rows > 0 ? (hsize_t)rows : 1;
    if (chunk[0] * row_bytes > (1u << 20)) {
        hsize_t most = (1u << 20) / row_bytes ? (1u << 20) / row_bytes : 1, best = most;
        for (hsize_t k = most; k >= (most + 1) / 2 && k > 0; k--)
            if ((hsize_t)rows % k == 0) {
                best = k;
                break;
            }
        chunk[0] = best;
    }
    chunk[1] = (hsize_t)(cols > 0 ? cols : 1);
    if ((space = H5Screate_simple(rank, dims, NULL)) < 0 || (lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 ||
        H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
        H5Pset_fletcher32(dcpl) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot set up dataset %s", fname, path);
    /* every dataset is written whole right after creation: no fill values
     * (serial HDF5 honours this; parallel 1.10.8 still fills filtered chunks) */
    if ((*out = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot create dataset %s", fname, path);
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_ds(hid_t file, const char *fname, const char *path, hid_t type, const void *data,
                    int rows, int cols) {
    int rc = MOLT_OK;
    hid_t ds = -1;
    MOLT_TRY(molt_h5_create_ds(file, fname, path, type, rows, cols, &ds));
    if (H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write dataset %s", fname, path);
done:
    if (ds >= 0) H5Dclose(ds);
    return rc;
}

int molt_h5_write_f32(hid_t file, const char *fname, const char *path, const float *data, int rows,
                      int cols) {
    return write_ds(file, fname, path, H5T_NATIVE_FLOAT, data, rows, cols);
}

int molt_h5_write_i32(hid_t file, const char *fname, const char *path, const int32_t *data,
                      int rows, int cols) {
    return write_ds(file, fname, path, H5T_NATIVE_INT32, data, rows, cols);
}

int molt_h5_read_f32(hid_t file, const char *fname, const char *path, float *data, int rows,
                     int cols) {
    int rc = MOLT_OK;
    hid_t ds = -1, space = -1;
    hsize_t dims[2] = {0, 0};
    int want = cols > 0 ? 2 : 1;
    quiet();
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: dataset %s is missing", fname, path);
    if ((ds = H5Dopen2(file, path, H5P_DEFAULT)) < 0 || (space = H5Dget_space(ds)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open dataset %s", fname, path);
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank != want || H5Sget_simple_extent_dims(space, dims, NULL) < 0 ||
        dims[0] != (hsize_t)rows || (want == 2 && dims[1] != (hsize_t)cols))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: dataset %s has shape [%llu%s%llu], expected [%d%s%d]",
                  fname, path, (unsigned long long)dims[0], rank == 2 ? "," : "",
                  rank == 2 ? (unsigned long long)dims[1] : 0ull, rows, want == 2 ? "," : "",
                  want == 2 ? cols : 0);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read dataset %s (corrupt or truncated: checksum "
                                  "or I/O failure)",
                  fname, path);
done:
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    return rc;
}

int molt_h5_write_attr_str(hid_t obj, const char *fname, const char *name, const char *value) {
    int rc = MOLT_OK;
    hid_t type = -1, space = -1, attr = -1;
    quiet();
    if ((type = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(type, strlen(value) + 1) < 0 ||
        H5Tset_strpad(type, H5T_STR_NULLTERM) < 0 || (space = H5Screate(H5S_SCALAR)) < 0 ||
        (attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, type, value) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write attribute %s", fname, name);
done:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return rc;
}

int molt_h5_write_attr_long(hid_t obj, const char *fname, const char *name, long value) {
    int rc = MOLT_OK;
    hid_t space = -1, attr = -1;
    long long v = value;
    quiet();
    if ((space = H5Screate(H5S_SCALAR)) < 0 ||
        (attr = H5Acreate2(obj, name, H5T_NATIVE_LLONG, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, H5T_NATIVE_LLONG, &v) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write attribute %s", fname, name);
done:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return rc;
}

int molt_h5_write_attr_double(hid_t obj, const char *fname, const char *name, double value) {
    int rc = MOLT_OK;
    hid_t space = -1, attr = -1;
    quiet();
    if ((space = H5Screate(H5S_SCALAR)) < 0 ||
        (attr = H5Acreate2(obj, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, H5T_NATIVE_DOUBLE, &value) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write attribute %s", fname, name);
done:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return rc;
}

/* Numeric attribute `name` of obj (path for messages) converted to `type`. */
static int read_attr(hid_t obj, const char *fname, const char *where, const char *name, hid_t type,
                     void *out) {
    int rc = MOLT_OK;
    hid_t attr = -1;
    quiet();
    if (H5Aexists(obj, name) <= 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s has no attribute '%s'", fname, where, name);
    if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || H5Aread(attr, type, out) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read attribute '%s' of %s", fname, name, where);
done:
    if (attr >= 0) H5Aclose(attr);
    return rc;
}

int molt_h5_read_attr_long(hid_t obj, const char *fname, const char *where, const char *name,
                           long *value) {
    long long v = 0;
    int rc = read_attr(obj, fname, where, name, H5T_NATIVE_LLONG, &v);
    *value = (long)v;
    return rc;
}

int molt_h5_read_attr_double(hid_t obj, const char *fname, const char *where, const char *name,
                             double *value) {
    return read_attr(obj, fname, where, name, H5T_NATIVE_DOUBLE, value);
}

int molt_h5_read_attr_str(hid_t obj, const char *fname, const char *where, const char *name,
                          char **value) {
    int rc = MOLT_OK;
    hid_t attr = -1, type = -1, mem = -1;
    char *buf = NULL;
    quiet();
    *value = NULL;
    if (H5Aexists(obj, name) <= 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s has no attribute '%s'", fname, where, name);
    if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (type = H5Aget_type(attr)) < 0 ||
        H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: attribute '%s' of %s is not a fixed-length string", fname,
                  name, where);
    size_t n = H5Tget_size(type);
    MOLT_ALLOC(buf, n + 1);
    if ((mem = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mem, n) < 0 || H5Aread(attr, mem, buf) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read attribute '%s' of %s", fname, name, where);
    buf[n] = '\0';
    *value = buf;
    buf = NULL;
done:
    free(buf);
    if (mem >= 0) H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    return rc;
}

int molt_h5_create(hid_t *file, const char *path, const char *config_text, long step) {
    int rc = MOLT_OK;
    quiet();
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (*file < 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot create %s: %s", path, strerror(errno));
    MOLT_TRY(molt_h5_write_attr_str(*file, path, "format", MOLT_CKPT_FORMAT));
    MOLT_TRY(molt_h5_write_attr_long(*file, path, "version", MOLT_CKPT_VERSION));
    MOLT_TRY(molt_h5_write_attr_long(*file, path, "step", step));
    MOLT_TRY(molt_h5_write_attr_str(*file, path, "config", config_text ? config_text : ""));
done:
    if (rc && *file >= 0) H5Fclose(*file), *file = -1;
    return rc;
}

int molt_h5_write_params(hid_t file, const char *fname, const molt_model *m, const char *prefix,
                         molt_h5_what what) {
    int rc = MOLT_OK;
    char path[256];
    for (int i = 0; i < m->n_params; i++) {
        const molt_param *p = &m->params[i];
        const float *src = what == MOLT_H5_GRADS ? p->g : p->w;
        if (!src) continue;
        snprintf(path, sizeof path, "/%s%s", prefix, p->path);
        MOLT_TRY(molt_h5_write_f32(file, fname, path, src, p->rows, p->cols));
    }
done:
    return rc;
}

int molt_weights_save(const char *path, const molt_model *m, const char *config_text, long step) {
    int rc = MOLT_OK;
    hid_t file = -1;
    char tmp[MOLT_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    MOLT_TRY(molt_h5_create(&file, tmp, config_text, step));
    MOLT_TRY(molt_h5_write_params(file, tmp, m, "", MOLT_H5_WEIGHTS));
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: flush failed", tmp);
    if (H5Fclose(file) < 0) {
        file = -1;
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: close failed", tmp);
    }
    file = -1;
    if (rename(tmp, path) != 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
done:
    if (file >= 0) H5Fclose(file);
    if (rc) remove(tmp);
    return rc;
}

/* Ranks 1..ep-1 of the first expert group append their experts in turn. */
static int append_experts(const char *tmp, const molt_model *m) {
    int rc = MOLT_OK;
    hid_t file = -1;
    char path[256];
    quiet();
    if ((file = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot open to append experts", tmp);
    for (int i = 0; i < m->n_params; i++) {
        const molt_param *p = &m->params[i];
        if (!p->expert) continue;
        snprintf(path, sizeof path, "/%s", p->path);
        MOLT_TRY(molt_h5_write_f32(file, tmp, path, p->w, p->rows, p->cols));
    }
    if (H5Fclose(file) < 0) {
        file = -1;
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: close failed", tmp);
    }
    file = -1;
done:
    if (file >= 0) H5Fclose(file);
    return rc;
}

int molt_weights_save_dist(const char *path, const molt_model *m, const char *config_text,
                           long step) {
    int rc = MOLT_OK, prev = MOLT_OK;
    const molt_layout *L = &m->lay;
    char tmp[MOLT_PATH_MAX + 8];
    if (L->ep == 1) return L->rank == 0 ? molt_weights_save(path, m, config_text, step) : MOLT_OK;
    if (L->dp_rank != 0) return MOLT_OK;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* a token passes 0 -> 1 -> ... -> ep-1 -> 0 carrying the first failure */
    if (L->ep_rank > 0) MOLT_MPI(MPI_Recv(&prev, 1, MPI_INT, L->ep_rank - 1, 85, L->ep_comm,
                                          MPI_STATUS_IGNORE));
    if (!prev) {
        if (L->ep_rank == 0) {
            hid_t file = -1;
            rc = molt_h5_create(&file, tmp, config_text, step);
            if (!rc) rc = molt_h5_write_params(file, tmp, m, "", MOLT_H5_WEIGHTS);
            if (file >= 0 && H5Fclose(file) < 0 && !rc)
                rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: close failed", tmp);
        } else {
            rc = append_experts(tmp, m);
        }
    }
    prev = prev ? prev : rc;
    MOLT_MPI(MPI_Send(&prev, 1, MPI_INT, (L->ep_rank + 1) % L->ep, 85, L->ep_comm));
    if (L->ep_rank == 0) {
        MOLT_MPI(MPI_Recv(&prev, 1, MPI_INT, L->ep - 1, 85, L->ep_comm, MPI_STATUS_IGNORE));
        rc = prev;
        if (!rc && rename(tmp, path) != 0)
            rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot rename %s to %s: %s", tmp, path,
                            strerror(errno));
        if (rc) remove(tmp);
    }
done:
    return rc;
}

int molt_weights_has(const char *path, const char *object, int *has) {
    int rc = MOLT_OK;
    hid_t file = -1;
    quiet();
    *has = 0;
    if (H5Fis_hdf5(path) <= 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a readable HDF5 file", path);
    if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open", path);
    *has = H5Lexists(file, object, H5P_DEFAULT) > 0;
done:
    if (file >= 0) H5Fclose(file);
    return rc;
}

int molt_weights_load(const char *path, molt_model *m, int adapters) {
    int rc = MOLT_OK;
    hid_t file = -1;
    char dpath[256];
    quiet();
    if (H5Fis_hdf5(path) <= 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a readable HDF5 file", path);
    if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open", path);
    for (int i = 0; i < m->n_params; i++) {
        molt_param *p = &m->params[i];
        /* full FFN experts (experts/...) are the model's FFN weights, like the
         * base: loaded whenever the file has them (molt factorize's output) */
        int ffn_expert = !strncmp(p->path, "experts/", 8) &&
                         strncmp(p->path, "experts/model.mm_moe/", 21); /* xattn: with its router */
        int teacher = !strncmp(p->path, "teacher/", 8); /* pa's frozen dense FFN */
        /* the feature projector: Parrot's stage 2 starts from stage 1's */
        int projector = p->kind == MOLT_PARAM_PROJ;
        if (p->kind != MOLT_PARAM_BASE && !ffn_expert && !projector && !adapters) continue;
        snprintf(dpath, sizeof dpath, "/%s", p->path);
        if (p->kind != MOLT_PARAM_BASE || teacher) { /* skip a group the file does not have */
            char top[64];
            snprintf(top, sizeof top, "/%.*s", (int)strcspn(p->path, "/"), p->path);
            if (H5Lexists(file, top, H5P_DEFAULT) <= 0) continue;
        }
        MOLT_TRY(molt_h5_read_f32(file, path, dpath, p->w, p->rows, p->cols));
    }
done:
    if (file >= 0) H5Fclose(file);
    return rc;
}
