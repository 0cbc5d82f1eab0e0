/* ckpt.h — training checkpoints (DESIGN §7): one HDF5 file per step, written
 * collectively by every rank with the MPI-IO driver, atomically, and read
 * back at any layout.
 *
 *   <checkpoint.dir>/<run>/step_<NNNNNNNN>.h5, <run>/latest (its file name)
 *   /          attrs format="molt-ckpt" version step tokens_seen world_size dp ep config
 *   /base/…, /adapters/…, /routers/…, /experts/…   every parameter of the whole
 *              model (all experts, keyed by global id), float32, Fletcher32
 *   /optim/<parameter path>/{m,v}   AdamW moments of every trainable; attrs step lr
 *   /rng, /data  attrs: the generator's keys and the data cursor (molt's
 *              randomness is counter-based: (seed, step, global sample) is the
 *              whole state, identical on every rank)
 * Dataset creation is collective; each dataset is written by one rank that
 * holds it (dense ones spread round-robin over the world, an expert's by one
 * of its holders), the others select nothing. The file goes to .tmp, is
 * flushed and fsync'ed, renamed, and only then `latest` is replaced
 * (write-fsync-rename too); older steps beyond checkpoint.keep (and not a
 * multiple of checkpoint.keep_every) are removed last. Loading reads each
 * rank's own parameters and moments by name, so a checkpoint written at one
 * (dp, ep) resumes at any other. */
#ifndef MOLT_CKPT_H
#define MOLT_CKPT_H
#include <stddef.h>
#include <stdio.h>

#include "molt/config.h"
#include "molt/model.h"
#include "molt/optim.h"

/* <checkpoint.dir>/<run>: <run> is the run directory without a leading
 * "runs/" (runs/finetune/dynmole -> checkpoints/finetune/dynmole). */
void molt_ckpt_dir(const molt_config *c, const char *run_dir, char *out, size_t n);

/* Collective over m->lay.world: write dir/step_<step>.h5 (step = steps
 * completed), publish it as `latest`, prune. A failure while the file is
 * open ends the job (peers are inside collective calls); the previous
 * checkpoint and `latest` stay intact. */
int molt_ckpt_save(const char *dir, const molt_config *c, const char *config_text,
                   const molt_model *m, const molt_adamw *opt, long step);

/* The checkpoint `latest` names in dir (MOLT_ERR_INPUT if none). */
int molt_ckpt_latest(const char *dir, char *path, size_t n);

/* Restore model weights, optimizer moments and its step count from `path`
 * (every rank reads its own share). The checkpoint's config must agree with
 * `c` on every key that shapes the model (the first difference is named);
 * other differences are listed on rank 0. Sets *step. */
int molt_ckpt_load(const char *path, const molt_config *c, molt_model *m, molt_adamw *opt,
                   long *step);

/* 1 when section.key decides the shape of a weight: model.* except
 * init_from, mode and max_seq_len; lora.r, lora.targets; moe.placement,
 * targets, num_experts, router, expert_d_ff. Weights only load under equal
 * values (resume also keeps model.mode and max_seq_len). */
int molt_ckpt_key_shapes_weights(const char *section, const char *key);

/* `molt ckpt inspect` (verify = 0): root attributes and every dataset with
 * dtype, shape and size, to `out`. `molt ckpt verify` (verify = 1): read
 * every dataset (Fletcher32 checks each chunk) and check that every
 * parameter and moment the checkpoint's own config implies is present with
 * its shape. Errors name the file and dataset (MOLT_ERR_INPUT). */
int molt_ckpt_examine(const char *path, FILE *out, int verify);

#endif
