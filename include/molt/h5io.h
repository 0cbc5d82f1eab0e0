/* h5io.h — HDF5 files of model weights in the DESIGN §7 layout:
 *   /  attrs format="molt-ckpt" version=1 step config
 *   /base/<Hugging Face name>, /adapters/<module>/shared/{lora_A,lora_B}
 * Every dataset is chunked with Fletcher32 checksums. This module writes and
 * reads whole files from one rank (serial driver); collective parallel
 * checkpoints with optimizer state build on it (DESIGN §7). Errors name the
 * file and the dataset. */
#ifndef MOLT_H5IO_H
#define MOLT_H5IO_H
#include <hdf5.h>

#include "molt/model.h"

#define MOLT_CKPT_FORMAT "molt-ckpt"
#define MOLT_CKPT_VERSION 1

/* Create a float32/int32 dataset [rows, cols] (cols = 0: a vector) at path,
 * chunked (~1 MiB of whole rows) with Fletcher32, intermediate groups
 * created. With the MPI-IO driver this is collective. */
int molt_h5_create_ds(hid_t file, const char *fname, const char *path, hid_t type, int rows,
                      int cols, hid_t *out);
/* Write float32 data [rows, cols] (cols = 0: a vector) at `path`, creating
 * intermediate groups. `fname` labels errors. */
int molt_h5_write_f32(hid_t file, const char *fname, const char *path, const float *data, int rows,
                      int cols);
int molt_h5_write_i32(hid_t file, const char *fname, const char *path, const int32_t *data,
                      int rows, int cols);
/* Read float32 data at `path`, which must have exactly shape [rows, cols]. */
int molt_h5_read_f32(hid_t file, const char *fname, const char *path, float *data, int rows,
                     int cols);
int molt_h5_write_attr_str(hid_t obj, const char *fname, const char *name, const char *value);
int molt_h5_write_attr_long(hid_t obj, const char *fname, const char *name, long value);
int molt_h5_write_attr_double(hid_t obj, const char *fname, const char *name, double value);
/* Attribute readers: `where` names the object in messages; a missing or
 * mistyped attribute is MOLT_ERR_INPUT. Strings are fixed-length (as molt
 * writes them); *value is malloc'ed, the caller frees it. */
int molt_h5_read_attr_long(hid_t obj, const char *fname, const char *where, const char *name,
                           long *value);
int molt_h5_read_attr_double(hid_t obj, const char *fname, const char *where, const char *name,
                             double *value);
int molt_h5_read_attr_str(hid_t obj, const char *fname, const char *where, const char *name,
                          char **value);

/* Create `path` (truncating) and write the root attributes. */
int molt_h5_create(hid_t *file, const char *path, const char *config_text, long step);

/* Which buffer of each parameter to write: the weights or their gradients. */
typedef enum { MOLT_H5_WEIGHTS = 0, MOLT_H5_GRADS = 1 } molt_h5_what;
/* Write every parameter (or every trainable's gradient) under `prefix`
 * ("" or e.g. "grad/"), at its registry path. */
int molt_h5_write_params(hid_t file, const char *fname, const molt_model *m, const char *prefix,
                         molt_h5_what what);

/* Save all weights to `path` atomically (path.tmp, then rename). */
int molt_weights_save(const char *path, const molt_model *m, const char *config_text, long step);
/* The same under expert parallelism, collective over m->lay's first expert
 * group (world ranks 0..ep-1; other ranks return at once): rank 0 writes
 * what it holds, then each ep rank in turn appends its experts (serial HDF5,
 * one writer at a time), then rank 0 renames. Returns rank 0's verdict on
 * rank 0 and the rank's own elsewhere. */
int molt_weights_save_dist(const char *path, const molt_model *m, const char *config_text,
                           long step);
/* Load every base weight (/base/...) of the model from `path` (a base file or
 * a checkpoint), and full FFN experts (/experts/...), the pa teacher
 * (/teacher/...) and the feature projector (/projector/...) when the file
 * has them. Adapters and routers in the file are
 * loaded too when `adapters` is set. */
int molt_weights_load(const char *path, molt_model *m, int adapters);
/* Does the HDF5 file at path have `object` (e.g. "/teacher")? */
int molt_weights_has(const char *path, const char *object, int *has);

#endif
