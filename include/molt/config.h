/* config.h — the run configuration: INI file + `--set section.key=value`.
 *
 * Keys live in one table (src/io/config.c) that drives parsing, validation,
 * the resolved-config text and `molt train --help`. Defaults are applied
 * first, then the file, then each --set in order, then cross-key validation.
 * Every error returns MOLT_ERR_INPUT after printing
 *     FILE:LINE: section.key: message (allowed: …)
 * ("--set" stands for FILE:LINE for command-line overrides). Unknown sections
 * and keys are errors; so are bad types and out-of-range values. */
#ifndef MOLT_CONFIG_H
#define MOLT_CONFIG_H
#include <stdint.h>
#include <stdio.h>

#define MOLT_PATH_MAX 512

typedef enum { MOLT_MODE_FULL = 0, MOLT_MODE_PEFT = 1 } molt_mode;
typedef enum { MOLT_SCHED_COSINE = 0, MOLT_SCHED_LINEAR = 1, MOLT_SCHED_CONSTANT = 2 } molt_schedule;
typedef enum { MOLT_DATA_TASKS = 0, MOLT_DATA_SHARDS = 1, MOLT_DATA_TEXT = 2 } molt_data_source;
typedef enum { MOLT_LORA_INIT_KAIMING = 0 } molt_lora_init;

/* The seven projections, in Hugging Face LLaMA names. Bit i of a target mask
 * is projection i. */
typedef enum {
    MOLT_PROJ_Q = 0, MOLT_PROJ_K, MOLT_PROJ_V, MOLT_PROJ_O,
    MOLT_PROJ_GATE, MOLT_PROJ_UP, MOLT_PROJ_DOWN, MOLT_NPROJ
} molt_proj;
extern const char *const molt_proj_names[MOLT_NPROJ]; /* "q_proj", … "down_proj" */

typedef struct {
    struct {
        int mode; /* molt_mode */
        int vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff, max_seq_len;
        double rope_theta, norm_eps;
        int tie_embeddings;
        char init_from[MOLT_PATH_MAX]; /* base .h5 or checkpoint; "" = random init */
    } model;
    struct {
        unsigned targets; /* bitmask over molt_proj; 0 = no LoRA */
        int r;
        double alpha, dropout;
        int init;        /* molt_lora_init */
        int train_norms; /* peft: also train RMSNorm weights */
    } lora;
    struct {
        int steps, batch_size, micro_batch, seq_len, warmup, schedule;
        double lr, min_lr, weight_decay, beta1, beta2, eps, grad_clip;
        uint64_t seed;
    } train;
    struct {
        int source; /* molt_data_source */
        char train_path[MOLT_PATH_MAX], eval_path[MOLT_PATH_MAX];
        unsigned tasks;  /* bitmask over molt_task (data.h); built-in suite */
        int prompt_loss; /* tasks: also train on prompt tokens (pretraining) */
    } data;
    struct {
        int ep, a2a_chunks;
    } parallel;
    struct {
        char dir[MOLT_PATH_MAX];
        int every, keep, keep_every;
    } checkpoint;
    struct {
        int every, samples;
        unsigned tasks;
    } eval;
    struct {
        int every;
        char run_dir[MOLT_PATH_MAX];
    } log;
    char source[MOLT_PATH_MAX]; /* the file the config came from ("" if none) */
} molt_config;

void molt_config_defaults(molt_config *c);
/* Parse an INI file on top of `c`. */
int molt_config_load(molt_config *c, const char *path);
/* Parse INI text on top of `c`; `name` labels errors (e.g. a checkpoint's path). */
int molt_config_load_string(molt_config *c, const char *text, const char *name);
/* Apply one "section.key=value" override. */
int molt_config_set(molt_config *c, const char *assignment);
/* Cross-key checks (d_model % n_heads, n_heads % n_kv_heads, batch divisibility
 * is checked by the trainer since it needs the world size, …). */
int molt_config_validate(const molt_config *c);
/* The resolved configuration as INI text (every key, one per line, sections in
 * order); caller frees. NULL on allocation failure (reported). */
char *molt_config_to_ini(const molt_config *c);
/* One line per key: section.key, type, default, allowed values, help. */
void molt_config_print_keys(FILE *out);

#endif
