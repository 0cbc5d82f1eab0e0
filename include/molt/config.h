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
typedef enum {
    MOLT_DATA_TASKS = 0,
    MOLT_DATA_SHARDS = 1,
    MOLT_DATA_TEXT = 2,
    MOLT_DATA_MMMB = 3,    /* mmmb_lite: the built-in multilingual feature benchmark (Parrot) */
    MOLT_DATA_FEATURES = 4 /* features: HDF5 /features + JSONL prompts and answers */
} molt_data_source;
/* model.projector: how feature tokens enter the model width */
typedef enum { MOLT_PROJECTOR_NONE = 0, MOLT_PROJECTOR_MLP2X_GELU = 1 } molt_projector;
typedef enum { MOLT_LORA_INIT_KAIMING = 0, MOLT_LORA_INIT_SVD } molt_lora_init;
/* factor.train: the factor router's experts frozen (FactorLLM's default) or trained */
typedef enum { MOLT_FACTOR_TRAIN_ROUTER = 0, MOLT_FACTOR_TRAIN_EXPERTS } molt_factor_train;
typedef enum {
    MOLT_PLACE_NONE = 0,  /* dense model (plain LoRA at most) */
    MOLT_PLACE_PLUGIN,    /* router + N LoRA experts per targeted projection */
    MOLT_PLACE_FUSED_MLP, /* one router per FFN; expert = FFN with LoRA-adapted gate/up/down */
    MOLT_PLACE_FFN,       /* experts are full SwiGLU FFNs with their own weights */
    MOLT_PLACE_XATTN      /* Parrot: SwiGLU experts on the projected feature tokens, routed
                             by a cross-attention summary of the prompt (DESIGN §4) */
} molt_placement;
typedef enum { MOLT_AUX_BALANCE = 0, MOLT_AUX_DYNMOLE, MOLT_AUX_ZLOSS, MOLT_AUX_PA, MOLT_NAUX } molt_aux_kind;
typedef enum { MOLT_AUX_SUM = 0, MOLT_AUX_MEAN = 1 } molt_aux_reduce;
typedef enum { MOLT_DISPATCH_ALLTOALL = 0, MOLT_DISPATCH_REPLICATE, MOLT_DISPATCH_AUTO } molt_dispatch;
/* The most layers a per-layer expert list may describe. */
#define MOLT_MAX_LAYERS 1024

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
        int projector;   /* molt_projector */
        int feat_dim;    /* width of an input feature token */
        int feat_tokens; /* feature tokens per sample */
    } model;
    struct {
        unsigned targets; /* bitmask over molt_proj; 0 = no LoRA */
        int r;
        double alpha, dropout;
        int init;        /* molt_lora_init */
        int train_norms; /* peft: also train RMSNorm weights */
    } lora;
    struct {
        int placement;      /* molt_placement */
        unsigned targets;   /* plugin: projections with experts */
        char num_experts[MOLT_PATH_MAX]; /* "6" or per layer "2x8,4x8" (count x layers) */
        int router;         /* molt_router_kind (router.h) */
        int top_k, keep_top_k, expert_d_ff, aux_reduce, dispatch;
        double top_p;       /* 0 = the router's reference default */
        double entropy_threshold, entropy_q, jitter, capacity_factor;
        unsigned aux;       /* bitmask over molt_aux_kind */
        double balance_coef, dynmole_coef, dynmole_balance_coef, zloss_coef;
        double pa_coef, pa_balance_coef; /* FactorLLM: PA loss and its balance term */
        int enable;         /* xattn: false = the identity (Parrot stage 1) */
        double moe_weight;  /* xattn: weight of the feature residual */
    } moe;
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
        char train_features[MOLT_PATH_MAX], eval_features[MOLT_PATH_MAX]; /* features */
        char lang_mix[MOLT_PATH_MAX]; /* mmmb_lite: training language mix "en:0.8,zh:0.04,…" */
        int mmmb_classes;             /* mmmb_lite: object classes */
        double mmmb_noise;            /* mmmb_lite: feature noise std */
        int mmmb_caption;             /* mmmb_lite: the span holds the English name as text */
        uint64_t mmmb_seed;           /* mmmb_lite: prototypes and the evaluation set */
    } data;
    struct {
        int ep, a2a_chunks;
    } parallel;
    struct {
        int method;       /* molt_factor_method (factorize.h) */
        int svd_rank;     /* cluster: neuron embedding width; 0 = min(64, 2 d_model, d_ff) */
        int kmeans_iters; /* cluster: balanced k-means rounds */
        int train;        /* molt_factor_train: what trains under the factor router */
        int pa_input;     /* 0 residual (the layer's own input), 1 teacher_prev */
    } factor;
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
/* Experts of layer l (0 when the layer has no MoE); valid after validate. */
int molt_config_experts(const molt_config *c, int layer);
/* Experts of the xattn module (0 without one, or with moe.enable = false). */
int molt_config_xattn_experts(const molt_config *c);
/* top_p with the router default resolved (topp 0.8, dynmole 0.75). */
double molt_config_top_p(const molt_config *c);
/* One line per key: section.key, type, default, allowed values, help. */
void molt_config_print_keys(FILE *out);

#endif
