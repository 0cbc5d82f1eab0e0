/* config.c — see include/molt/config.h.
 *
 * One table (KEYS) holds every key: section, name, type, where it lives in
 * molt_config, default text, range, allowed names and help. Parsing, defaults
 * (the default text goes through the same parser as a file would), per-key
 * validation, the resolved INI text and `molt train --help` all walk it, so a
 * new key is one table line plus its struct field.
 *
 * Files are read with inih's ini_parse_stream through our own line reader,
 * because Debian's inih gives the handler no line number and silently splits
 * lines longer than its buffer. The reader counts lines, rejects overlong
 * ones, strips leading blanks (so an indented line is never taken for a
 * multi-line continuation of the previous value), checks the shape inih will
 * accept and the section name, and ends the stream at the first error.
 *
 * A key given twice in a file is allowed: the last one wins, just as later
 * --set options override earlier ones. */
#define _POSIX_C_SOURCE 200809L
#include "molt/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "molt/data.h"
#include "molt/err.h"
#include "molt/mmmb.h"
#include "molt/router.h"

const char *const molt_proj_names[MOLT_NPROJ] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};

static const char *const mode_names[] = {"full", "peft"};
static const char *const schedule_names[] = {"cosine", "linear", "constant"};
static const char *const source_names[] = {"tasks", "shards", "text", "mmmb_lite", "features"};
static const char *const projector_names[] = {"none", "mlp2x_gelu"};
static const char *const lora_init_names[] = {"kaiming", "svd"};
static const char *const placement_names[] = {"none", "plugin", "fused_mlp", "ffn", "xattn"};
static const char *const aux_names[] = {"balance", "dynmole", "zloss", "pa"};
static const char *const aux_reduce_names[] = {"sum", "mean"};
static const char *const dispatch_names[] = {"alltoall", "replicate", "auto"};
static const char *const factor_method_names[] = {"contiguous", "random", "cluster"};
static const char *const factor_train_names[] = {"router", "router,experts"};
static const char *const pa_input_names[] = {"residual", "teacher_prev"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(COUNT(mode_names) == MOLT_MODE_PEFT + 1, "mode_names follows molt_mode");
_Static_assert(COUNT(schedule_names) == MOLT_SCHED_CONSTANT + 1, "follows molt_schedule");
_Static_assert(COUNT(source_names) == MOLT_DATA_FEATURES + 1, "follows molt_data_source");
_Static_assert(COUNT(placement_names) == MOLT_PLACE_XATTN + 1, "follows molt_placement");
_Static_assert(COUNT(lora_init_names) == MOLT_LORA_INIT_SVD + 1, "follows molt_lora_init");
_Static_assert(MOLT_NPROJ <= 32 && MOLT_NTASKS <= 32, "bitmasks are unsigned");

typedef enum { T_INT, T_U64, T_DOUBLE, T_BOOL, T_STRING, T_ENUM, T_MASK } key_type;
static const char *const type_names[] = {"int",    "uint64", "double", "bool",
                                         "string", "enum",   "list"};

/* Numeric range; `on` = 0 means unrestricted. Open ends exclude the bound. */
typedef struct {
    double lo, hi;
    unsigned char on, lo_open, hi_open;
} key_range;

typedef struct {
    const char *section, *key;
    key_type type;
    size_t offset, size; /* of the field in molt_config */
    const char *def;     /* default, as the text a file would hold */
    key_range range;     /* T_INT, T_U64, T_DOUBLE */
    const char *const *names;
    int n_names; /* T_ENUM: value i is names[i]; T_MASK: bit i is names[i] */
    const char *help;
} key_spec;

#define AT(f) offsetof(molt_config, f), sizeof(((molt_config *)0)->f)
#define CLOSED(a, b)                                                                               \
    { (a), (b), 1, 0, 0 } /* [a, b] */
#define OPEN_LO(a, b)                                                                              \
    { (a), (b), 1, 1, 0 } /* (a, b] */
#define OPEN_HI(a, b)                                                                              \
    { (a), (b), 1, 0, 1 } /* [a, b) */
#define ANY                                                                                        \
    { 0, 0, 0, 0, 0 }
#define NAMES(a) (a), (int)COUNT(a)
#define NONE NULL, 0

/* clang-format off */
static const key_spec KEYS[] = {
    {"model", "mode", T_ENUM, AT(model.mode), "full", ANY, NAMES(mode_names),
     "full: train every weight; peft: train LoRA adapters on a frozen base"},
    {"model", "vocab_size", T_INT, AT(model.vocab_size), "259", CLOSED(259, 16777216), NONE,
     "token ids (256 bytes + <bos> <eos> <pad>, or more)"},
    {"model", "d_model", T_INT, AT(model.d_model), "64", CLOSED(8, 65536), NONE, "model width"},
    {"model", "n_layers", T_INT, AT(model.n_layers), "2", CLOSED(1, 1024), NONE, "transformer blocks"},
    {"model", "n_heads", T_INT, AT(model.n_heads), "4", CLOSED(1, 1024), NONE, "query heads"},
    {"model", "n_kv_heads", T_INT, AT(model.n_kv_heads), "4", CLOSED(1, 1024), NONE,
     "key/value heads (grouped-query attention when < n_heads)"},
    {"model", "d_ff", T_INT, AT(model.d_ff), "256", CLOSED(1, 1048576), NONE, "SwiGLU hidden width"},
    {"model", "max_seq_len", T_INT, AT(model.max_seq_len), "256", CLOSED(2, 1048576), NONE,
     "longest sequence the model supports (RoPE table)"},
    {"model", "rope_theta", T_DOUBLE, AT(model.rope_theta), "10000", OPEN_LO(0, 1e9), NONE, "RoPE base"},
    {"model", "norm_eps", T_DOUBLE, AT(model.norm_eps), "1e-5", OPEN_LO(0, 1), NONE, "RMSNorm epsilon"},
    {"model", "tie_embeddings", T_BOOL, AT(model.tie_embeddings), "true", ANY, NONE,
     "output projection shares the embedding matrix"},
    {"model", "init_from", T_STRING, AT(model.init_from), "", ANY, NONE,
     "base .h5 or checkpoint to start from (empty = random init)"},
    {"model", "projector", T_ENUM, AT(model.projector), "none", ANY, NAMES(projector_names),
     "feature inputs (Parrot): none, or mlp2x_gelu (Linear feat_dim->d, GELU, Linear d->d)"},
    {"model", "feat_dim", T_INT, AT(model.feat_dim), "32", CLOSED(1, 1048576), NONE,
     "width of an input feature token"},
    {"model", "feat_tokens", T_INT, AT(model.feat_tokens), "8", CLOSED(1, 65536), NONE,
     "feature tokens per sample, after <bos>"},

    {"lora", "targets", T_MASK, AT(lora.targets), "", ANY, NAMES(molt_proj_names),
     "projections that get LoRA adapters"},
    {"lora", "r", T_INT, AT(lora.r), "8", CLOSED(1, 4096), NONE, "adapter rank"},
    {"lora", "alpha", T_DOUBLE, AT(lora.alpha), "16", OPEN_LO(0, 1e6), NONE,
     "adapter scale numerator (update scaled by alpha / r)"},
    {"lora", "dropout", T_DOUBLE, AT(lora.dropout), "0", OPEN_HI(0, 1), NONE,
     "dropout on the adapter input"},
    {"lora", "init", T_ENUM, AT(lora.init), "kaiming", ANY, NAMES(lora_init_names),
     "adapter initialization: kaiming (A kaiming-uniform, B zero), svd (PiSSA: slices of the "
     "base weight's singular triplets, base corrected, plugin routers zero)"},
    {"lora", "train_norms", T_BOOL, AT(lora.train_norms), "false", ANY, NONE,
     "peft: also train RMSNorm weights"},

    {"moe", "placement", T_ENUM, AT(moe.placement), "none", ANY, NAMES(placement_names),
     "where experts go: none, plugin (router + LoRA experts per projection), fused_mlp (MixLoRA), ffn (full FFN experts), xattn (Parrot: on the projected features)"},
    {"moe", "targets", T_MASK, AT(moe.targets), "gate_proj,up_proj,down_proj", ANY, NAMES(molt_proj_names),
     "plugin: projections that get a router and LoRA experts"},
    {"moe", "num_experts", T_STRING, AT(moe.num_experts), "6", ANY, NONE,
     "experts per layer: a count, or per-layer list COUNTxLAYERS,... covering model.n_layers (MoLA)"},
    {"moe", "router", T_ENUM, AT(moe.router), "topk", ANY, NAMES(molt_router_names),
     "routing rule (DESIGN section 3)"},
    {"moe", "top_k", T_INT, AT(moe.top_k), "2", CLOSED(1, 4096), NONE, "experts per token (topk, factor, expert_choice)"},
    {"moe", "top_p", T_DOUBLE, AT(moe.top_p), "0", CLOSED(0, 1), NONE,
     "probability mass kept (topp, dynmole); 0 = reference default (topp 0.8, dynmole 0.75)"},
    {"moe", "keep_top_k", T_INT, AT(moe.keep_top_k), "2", CLOSED(1, 4096), NONE, "dynmole: experts always kept"},
    {"moe", "entropy_threshold", T_DOUBLE, AT(moe.entropy_threshold), "0.9", CLOSED(0, 1e6), NONE,
     "dynmole: soft routing above this normalised Tsallis entropy (>= 1 disables)"},
    {"moe", "entropy_q", T_DOUBLE, AT(moe.entropy_q), "1.1", OPEN_LO(0, 2), NONE, "dynmole: Tsallis index q"},
    {"moe", "jitter", T_DOUBLE, AT(moe.jitter), "0.01", OPEN_HI(0, 1), NONE,
     "switch: multiplicative input jitter U[1-eps,1+eps] in training"},
    {"moe", "capacity_factor", T_DOUBLE, AT(moe.capacity_factor), "0", CLOSED(0, 1e6), NONE,
     "0 = dropless; > 0 caps tokens per expert (expert_choice: its capacity; default 1 there)"},
    {"moe", "aux", T_MASK, AT(moe.aux), "", ANY, NAMES(aux_names), "auxiliary router losses, summed"},
    {"moe", "balance_coef", T_DOUBLE, AT(moe.balance_coef), "1e-3", CLOSED(0, 1e6), NONE, "coefficient of balance"},
    {"moe", "dynmole_coef", T_DOUBLE, AT(moe.dynmole_coef), "0.01", CLOSED(0, 1e6), NONE,
     "dynmole aux: coefficient of the Tsallis entropy term"},
    {"moe", "dynmole_balance_coef", T_DOUBLE, AT(moe.dynmole_balance_coef), "0.001", CLOSED(0, 1e6), NONE,
     "dynmole aux: coefficient of its soft balance term"},
    {"moe", "zloss_coef", T_DOUBLE, AT(moe.zloss_coef), "1e-3", CLOSED(0, 1e6), NONE, "coefficient of zloss"},
    {"moe", "pa_coef", T_DOUBLE, AT(moe.pa_coef), "0.05", CLOSED(0, 1e6), NONE,
     "pa (FactorLLM): coefficient of the Prior-Approximate KL"},
    {"moe", "pa_balance_coef", T_DOUBLE, AT(moe.pa_balance_coef), "0.01", CLOSED(0, 1e6), NONE,
     "pa (FactorLLM): coefficient of its balance term mean(topk_mask * softmax(z))"},
    {"moe", "aux_reduce", T_ENUM, AT(moe.aux_reduce), "sum", ANY, NAMES(aux_reduce_names),
     "router losses of all layers: sum or mean"},
    {"moe", "dispatch", T_ENUM, AT(moe.dispatch), "alltoall", ANY, NAMES(dispatch_names),
     "expert-parallel exchange (alltoall; replicate and auto arrive with expert parallelism)"},
    {"moe", "expert_d_ff", T_INT, AT(moe.expert_d_ff), "0", CLOSED(0, 1048576), NONE,
     "ffn, xattn: hidden width of each expert (0 = model.d_ff / experts)"},
    {"moe", "enable", T_BOOL, AT(moe.enable), "true", ANY, NONE,
     "xattn: false makes the module the identity (Parrot stage 1: projector only)"},
    {"moe", "moe_weight", T_DOUBLE, AT(moe.moe_weight), "0.1", CLOSED(0, 1e6), NONE,
     "xattn: output = sum_e w_e E_e(H_v) + moe_weight * H_v"},

    {"train", "steps", T_INT, AT(train.steps), "100", CLOSED(0, 2e9), NONE, "optimizer steps"},
    {"train", "batch_size", T_INT, AT(train.batch_size), "16", CLOSED(1, 1e8), NONE,
     "global batch, in sequences"},
    {"train", "micro_batch", T_INT, AT(train.micro_batch), "0", CLOSED(0, 1e8), NONE,
     "sequences per rank per forward/backward (0 = the whole per-rank batch)"},
    {"train", "seq_len", T_INT, AT(train.seq_len), "64", CLOSED(2, 1048576), NONE,
     "positions per training sequence"},
    {"train", "warmup", T_INT, AT(train.warmup), "0", CLOSED(0, 2e9), NONE,
     "linear learning-rate warmup steps"},
    {"train", "schedule", T_ENUM, AT(train.schedule), "cosine", ANY, NAMES(schedule_names),
     "learning-rate decay from lr to min_lr after warmup"},
    {"train", "lr", T_DOUBLE, AT(train.lr), "1e-3", CLOSED(0, 10), NONE, "peak learning rate"},
    {"train", "min_lr", T_DOUBLE, AT(train.min_lr), "0", CLOSED(0, 10), NONE,
     "learning rate at the end of the decay"},
    {"train", "weight_decay", T_DOUBLE, AT(train.weight_decay), "0", CLOSED(0, 10), NONE,
     "AdamW decoupled weight decay"},
    {"train", "beta1", T_DOUBLE, AT(train.beta1), "0.9", OPEN_HI(0, 1), NONE, "Adam first-moment decay"},
    {"train", "beta2", T_DOUBLE, AT(train.beta2), "0.95", OPEN_HI(0, 1), NONE,
     "Adam second-moment decay"},
    {"train", "eps", T_DOUBLE, AT(train.eps), "1e-8", OPEN_LO(0, 1), NONE, "Adam epsilon"},
    {"train", "grad_clip", T_DOUBLE, AT(train.grad_clip), "1.0", CLOSED(0, 1e9), NONE,
     "clip the global gradient norm to this (0 = off)"},
    {"train", "seed", T_U64, AT(train.seed), "1", ANY, NONE, "seed of every random stream"},

    {"data", "source", T_ENUM, AT(data.source), "tasks", ANY, NAMES(source_names),
     "tasks: built-in suite; shards: llm.c token shards; text: byte-tokenized file; "
     "mmmb_lite: built-in multilingual feature benchmark; features: HDF5 features + JSONL"},
    {"data", "train_path", T_STRING, AT(data.train_path), "", ANY, NONE,
     "training data file (shards, text)"},
    {"data", "eval_path", T_STRING, AT(data.eval_path), "", ANY, NONE,
     "evaluation data file (empty = none)"},
    {"data", "tasks", T_MASK, AT(data.tasks), "all", ANY, NAMES(molt_task_names),
     "built-in tasks to train on"},
    {"data", "prompt_loss", T_BOOL, AT(data.prompt_loss), "false", ANY, NONE,
     "tasks: also train on prompt tokens"},
    {"data", "train_features", T_STRING, AT(data.train_features), "", ANY, NONE,
     "features: HDF5 file with /features [n, feat_tokens, feat_dim] for data.train_path"},
    {"data", "eval_features", T_STRING, AT(data.eval_features), "", ANY, NONE,
     "features: HDF5 features of data.eval_path"},
    {"data", "lang_mix", T_STRING, AT(data.lang_mix), "en:0.8,zh:0.04,pt:0.04,ar:0.04,tr:0.04,ru:0.04",
     ANY, NONE, "mmmb_lite: training languages and weights (en zh pt ar tr ru; English-heavy)"},
    {"data", "mmmb_classes", T_INT, AT(data.mmmb_classes), "12", CLOSED(4, 12), NONE,
     "mmmb_lite: object classes (prototypes)"},
    {"data", "mmmb_noise", T_DOUBLE, AT(data.mmmb_noise), "1.0", CLOSED(0, 1e3), NONE,
     "mmmb_lite: std of the noise added to a class prototype"},
    {"data", "mmmb_caption", T_BOOL, AT(data.mmmb_caption), "false", ANY, NONE,
     "mmmb_lite: the span holds the English class name as text (LM pretraining, no features)"},
    {"data", "mmmb_seed", T_U64, AT(data.mmmb_seed), "2024", ANY, NONE,
     "mmmb_lite: seed of the class prototypes and of the evaluation set"},

    {"parallel", "ep", T_INT, AT(parallel.ep), "1", CLOSED(1, 65536), NONE,
     "expert-parallel group size, in ranks"},
    {"parallel", "a2a_chunks", T_INT, AT(parallel.a2a_chunks), "1", CLOSED(1, 64), NONE,
     "chunks per all-to-all exchange"},

    {"factor", "method", T_ENUM, AT(factor.method), "contiguous", ANY, NAMES(factor_method_names),
     "molt factorize: neurons per expert: contiguous (the reference), random (seeded "
     "permutation), cluster (SVD embedding + balanced k-means)"},
    {"factor", "svd_rank", T_INT, AT(factor.svd_rank), "0", CLOSED(0, 65536), NONE,
     "cluster: width of the neuron embedding (0 = min(64, 2 d_model, d_ff))"},
    {"factor", "kmeans_iters", T_INT, AT(factor.kmeans_iters), "20", CLOSED(1, 10000), NONE,
     "cluster: balanced k-means rounds"},
    {"factor", "train", T_ENUM, AT(factor.train), "router", ANY, NAMES(factor_train_names),
     "moe.router = factor: the FFN experts stay frozen (router) or train too "
     "(router,experts; with moe.aux = pa the dense FFN is kept as a frozen teacher)"},
    {"factor", "pa_input", T_ENUM, AT(factor.pa_input), "residual", ANY, NAMES(pa_input_names),
     "pa: the input its experts and teacher see: residual (the layer's own) or teacher_prev "
     "(the reference code's quirk: layer l > 0 gets layer l-1's teacher output)"},

    {"checkpoint", "dir", T_STRING, AT(checkpoint.dir), "checkpoints", ANY, NONE,
     "checkpoint directory"},
    {"checkpoint", "every", T_INT, AT(checkpoint.every), "0", CLOSED(0, 2e9), NONE,
     "steps between checkpoints (0 = no periodic checkpoints)"},
    {"checkpoint", "keep", T_INT, AT(checkpoint.keep), "3", CLOSED(1, 1e6), NONE,
     "newest checkpoints kept"},
    {"checkpoint", "keep_every", T_INT, AT(checkpoint.keep_every), "0", CLOSED(0, 2e9), NONE,
     "also keep checkpoints at multiples of this step (0 = none)"},

    {"eval", "every", T_INT, AT(eval.every), "0", CLOSED(0, 2e9), NONE,
     "steps between evaluations (0 = no periodic evaluation)"},
    {"eval", "samples", T_INT, AT(eval.samples), "100", CLOSED(0, 1e8), NONE,
     "evaluation samples"},
    {"eval", "tasks", T_MASK, AT(eval.tasks), "all", ANY, NAMES(molt_task_names),
     "built-in tasks to evaluate"},

    {"log", "every", T_INT, AT(log.every), "10", CLOSED(1, 2e9), NONE, "steps between log lines"},
    {"log", "run_dir", T_STRING, AT(log.run_dir), "", ANY, NONE, "output directory of the run"},
};
/* clang-format on */
enum { NKEYS = (int)COUNT(KEYS) };

static const char *const bool_true[] = {"true", "yes", "on", "1"};
static const char *const bool_false[] = {"false", "no", "off", "0"};

/* Longest text of one value: a string key, or a list of every name. */
/* Strings must fit on one line of the resolved config, which Debian's inih
 * reads in lines of at most 199 characters: "key = value" with the longest key
 * stays under that at 160 characters of value. */
enum { STRING_VALUE_MAX = 160 };

enum { VALUE_TEXT_MAX = MOLT_PATH_MAX + 256, LIST_TEXT_MAX = 768 };

/* ---- small text helpers ---------------------------------------------- */

/* Append to a NUL-terminated buffer of n bytes, truncating. */
static void append(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t n, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

/* Copy into a string field, zero-padded (so configs compare with memcmp). */
static void copy_field(char *dst, const char *s, size_t len) {
    if (len >= MOLT_PATH_MAX) len = MOLT_PATH_MAX - 1;
    memset(dst, 0, MOLT_PATH_MAX);
    memcpy(dst, s, len);
}

static int is_blank(int ch) {
    return ch == ' ' || ch == '\t';
}

/* Trim blanks in place; returns the start. */
static char *trim(char *s) {
    while (is_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n && is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* A string value survives INI (inih strips blanks and cuts comments) only
 * without these. */
static int representable(const char *s) {
    size_t n = strlen(s);
    if (n && (is_blank(s[0]) || is_blank(s[n - 1]))) return 0;
    for (const char *p = s; *p; p++)
        if (*p == ';' || *p == '#' || iscntrl((unsigned char)*p)) return 0;
    return 1;
}

static void range_text(const key_range *r, char *buf, size_t n) {
    snprintf(buf, n, "%.10g .. %.10g", r->lo, r->hi);
    if (r->lo_open && r->hi_open)
        append(buf, n, ", excluding both ends");
    else if (r->lo_open)
        append(buf, n, ", excluding %.10g", r->lo);
    else if (r->hi_open)
        append(buf, n, ", excluding %.10g", r->hi);
}

static int in_range(const key_range *r, double v) {
    if (!r->on) return 1;
    int lo_ok = r->lo_open ? v > r->lo : v >= r->lo;
    int hi_ok = r->hi_open ? v < r->hi : v <= r->hi;
    return lo_ok && hi_ok;
}

/* "a, b, c" (+ ", all, none" for lists). */
static void names_text(const key_spec *k, char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; i < k->n_names; i++)
        append(buf, n, "%s%s", i ? ", " : "", k->names[i]);
    if (k->type == T_MASK) append(buf, n, ", all, none");
}

/* What a key accepts, for messages and --help. */
static void allowed_text(const key_spec *k, char *buf, size_t n) {
    switch (k->type) {
    case T_INT:
    case T_DOUBLE:
    case T_U64:
        if (k->range.on)
            range_text(&k->range, buf, n);
        else
            snprintf(buf, n, "any");
        break;
    case T_BOOL:
        snprintf(buf, n, "true, false, yes, no, on, off, 1, 0");
        break;
    case T_STRING:
        snprintf(buf, n, "text, up to %d characters", STRING_VALUE_MAX);
        break;
    case T_ENUM:
        names_text(k, buf, n);
        break;
    case T_MASK:
        snprintf(buf, n, "comma-separated ");
        char names[LIST_TEXT_MAX];
        names_text(k, names, sizeof names);
        append(buf, n, "%s", names);
        break;
    }
}

static void section_list(char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; i < NKEYS; i++)
        if (i == 0 || strcmp(KEYS[i].section, KEYS[i - 1].section) != 0)
            append(buf, n, "%s%s", i ? ", " : "", KEYS[i].section);
}

static void key_list(const char *section, char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0)
            append(buf, n, "%s%s", buf[0] ? ", " : "", KEYS[i].key);
}

static int section_known(const char *section) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0) return 1;
    return 0;
}

static const key_spec *find_key(const char *section, const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0) return &KEYS[i];
    return NULL;
}

static int find_name(const key_spec *k, const char *s, size_t len) {
    for (int i = 0; i < k->n_names; i++)
        if (strlen(k->names[i]) == len && strncmp(k->names[i], s, len) == 0) return i;
    return -1;
}

static unsigned all_bits(const key_spec *k) {
    return k->n_names >= 32 ? ~0u : (1u << k->n_names) - 1u;
}

/* ---- one value: text -> field ---------------------------------------- */

/* Each parser reports `WHERE: section.key: …` and writes the field only on
 * success. `where` is "FILE:LINE", "--set" or the config's name. */

static int out_of_range(const key_spec *k, const char *text, const char *where) {
    char allowed[128];
    range_text(&k->range, allowed, sizeof allowed);
    return MOLT_ERROR(MOLT_ERR_INPUT, "%s: %s.%s: %.80s is out of range (allowed: %s)", where,
                      k->section, k->key, text, allowed);
}

static int parse_int(const key_spec *k, const char *text, int *field, const char *where) {
    int rc = MOLT_OK;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || isspace((unsigned char)text[0]))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: expected an integer, got \"%.80s\"", where,
                  k->section, k->key, text);
    if (errno == ERANGE || v < INT_MIN || v > INT_MAX || !in_range(&k->range, (double)v)) {
        rc = out_of_range(k, text, where);
        goto done;
    }
    *field = (int)v;
done:
    return rc;
}

static int parse_u64(const key_spec *k, const char *text, uint64_t *field, const char *where) {
    int rc = MOLT_OK;
    char *end;
    errno = 0;
    /* strtoull accepts "-1" (as 2^64-1); only digits are a uint64 here. */
    unsigned long long v = strtoull(text, &end, 10);
    if (!isdigit((unsigned char)text[0]) || *end)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: expected a non-negative integer, got \"%.80s\"",
                  where, k->section, k->key, text);
    if (errno == ERANGE || !in_range(&k->range, (double)v)) {
        rc = out_of_range(k, text, where);
        goto done;
    }
    *field = (uint64_t)v;
done:
    return rc;
}

static int parse_double(const key_spec *k, const char *text, double *field, const char *where) {
    int rc = MOLT_OK;
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || isspace((unsigned char)text[0]))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: expected a number, got \"%.80s\"", where, k->section,
                  k->key, text);
    if (!isfinite(v))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: expected a finite number, got \"%.80s\"", where,
                  k->section, k->key, text);
    if (!in_range(&k->range, v)) {
        rc = out_of_range(k, text, where);
        goto done;
    }
    *field = v;
done:
    return rc;
}

/* Booleans are case-insensitive ("True" from Python habits is fine). */
static int parse_bool(const key_spec *k, const char *text, int *field, const char *where) {
    int rc = MOLT_OK;
    for (size_t i = 0; i < COUNT(bool_true); i++) {
        if (strcasecmp(text, bool_true[i]) == 0) {
            *field = 1;
            goto done;
        }
        if (strcasecmp(text, bool_false[i]) == 0) {
            *field = 0;
            goto done;
        }
    }
    char allowed[128];
    allowed_text(k, allowed, sizeof allowed);
    MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: expected true or false, got \"%.80s\" (allowed: %s)",
              where, k->section, k->key, text, allowed);
done:
    return rc;
}

static int parse_string(const key_spec *k, const char *text, char *field, const char *where) {
    int rc = MOLT_OK;
    size_t len = strlen(text);
    if (len > STRING_VALUE_MAX)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: value is %zu characters long (limit %d)", where,
                  k->section, k->key, len, STRING_VALUE_MAX);
    if (!representable(text))
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: %s.%s: \"%.80s\" cannot be written back to an INI file (no ';', '#', "
                  "control characters, or leading/trailing blanks)",
                  where, k->section, k->key, text);
    copy_field(field, text, len);
done:
    return rc;
}

static int parse_enum(const key_spec *k, const char *text, int *field, const char *where) {
    int rc = MOLT_OK;
    int i = find_name(k, text, strlen(text));
    if (i < 0) {
        char allowed[LIST_TEXT_MAX];
        names_text(k, allowed, sizeof allowed);
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: unknown value \"%.80s\" (allowed: %s)", where,
                  k->section, k->key, text, allowed);
    }
    *field = i;
done:
    return rc;
}

/* "a, b" -> bits of a and b; "all" = every bit; "" or "none" = 0. An empty
 * item ("a,,b", "a,") is the unknown name "". */
static int parse_mask(const key_spec *k, const char *text, unsigned *field, const char *where) {
    int rc = MOLT_OK;
    unsigned mask = 0;
    const char *p = text;
    while (is_blank(*p))
        p++;
    for (int more = *p != '\0'; more;) {
        const char *end = p + strcspn(p, ","), *e = end;
        while (e > p && is_blank(e[-1]))
            e--;
        size_t len = (size_t)(e - p);
        int i = find_name(k, p, len);
        if (i >= 0) {
            mask |= 1u << i;
        } else if (len == 3 && strncmp(p, "all", 3) == 0) {
            mask |= all_bits(k);
        } else if (!(len == 4 && strncmp(p, "none", 4) == 0)) {
            char allowed[LIST_TEXT_MAX];
            names_text(k, allowed, sizeof allowed);
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: unknown name \"%.*s\" (allowed: %s)", where,
                      k->section, k->key, (int)(len > 80 ? 80 : len), p, allowed);
        }
        more = *end == ',';
        p = more ? end + 1 : end;
        while (is_blank(*p))
            p++;
    }
    *field = mask;
done:
    return rc;
}

static int parse_value(const key_spec *k, const char *text, molt_config *c, const char *where) {
    void *field = (char *)c + k->offset;
    switch (k->type) {
    case T_INT:
        return parse_int(k, text, field, where);
    case T_U64:
        return parse_u64(k, text, field, where);
    case T_DOUBLE:
        return parse_double(k, text, field, where);
    case T_BOOL:
        return parse_bool(k, text, field, where);
    case T_STRING:
        return parse_string(k, text, field, where);
    case T_ENUM:
        return parse_enum(k, text, field, where);
    case T_MASK:
        return parse_mask(k, text, field, where);
    }
    return MOLT_ERROR(MOLT_ERR_INTERNAL, "%s.%s: bad key type %d", k->section, k->key, k->type);
}

/* ---- one value: field -> text ---------------------------------------- */

/* Shortest of %.15g … %.17g that reads back as the same double. */
static void format_double(double v, char *buf, size_t n) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* Text that parse_value turns back into exactly this field. Values no parser
 * would produce (set by code) print as something the parser rejects, so
 * validation reports them. */
static void value_text(const key_spec *k, const molt_config *c, char *buf, size_t n) {
    const void *field = (const char *)c + k->offset;
    buf[0] = '\0';
    switch (k->type) {
    case T_INT:
        snprintf(buf, n, "%d", *(const int *)field);
        break;
    case T_U64:
        snprintf(buf, n, "%" PRIu64, *(const uint64_t *)field);
        break;
    case T_DOUBLE:
        format_double(*(const double *)field, buf, n);
        break;
    case T_BOOL: {
        int v = *(const int *)field;
        if (v == 0 || v == 1)
            snprintf(buf, n, "%s", v ? "true" : "false");
        else
            snprintf(buf, n, "%d", v);
        break;
    }
    case T_STRING: /* an unterminated field prints too long and is rejected */
        snprintf(buf, n, "%.*s", MOLT_PATH_MAX, (const char *)field);
        break;
    case T_ENUM: {
        int v = *(const int *)field;
        if (v >= 0 && v < k->n_names)
            snprintf(buf, n, "%s", k->names[v]);
        else
            snprintf(buf, n, "%d", v);
        break;
    }
    case T_MASK: {
        /* Names, never "all": a saved config must not grow when tasks are added. */
        unsigned v = *(const unsigned *)field;
        for (int i = 0; i < 32; i++) {
            if (!(v & (1u << i))) continue;
            if (i < k->n_names)
                append(buf, n, "%s%s", buf[0] ? "," : "", k->names[i]);
            else
                append(buf, n, "%sbit%d", buf[0] ? "," : "", i);
        }
        if (!buf[0]) snprintf(buf, n, "none");
        break;
    }
    }
}

/* ---- sections and keys ----------------------------------------------- */

static int assign(molt_config *c, const char *section, const char *key, const char *value,
                  const char *where) {
    int rc = MOLT_OK;
    char list[LIST_TEXT_MAX];
    if (!section[0])
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s: key outside any section (put it under a [section] line)",
                  where, key);
    if (!section_known(section)) {
        section_list(list, sizeof list);
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: [%s]: unknown section (allowed: %s)", where, section, list);
    }
    const key_spec *k = find_key(section, key);
    if (!k) {
        key_list(section, list, sizeof list);
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %s.%s: unknown key (allowed in [%s]: %s)", where, section,
                  key, section, list);
    }
    rc = parse_value(k, value, c, where);
done:
    return rc;
}

/* A table line whose field size disagrees with its type is a bug here. */
static int size_ok(const key_spec *k) {
    switch (k->type) {
    case T_INT:
    case T_BOOL:
    case T_ENUM:
        return k->size == sizeof(int);
    case T_U64:
        return k->size == sizeof(uint64_t);
    case T_DOUBLE:
        return k->size == sizeof(double);
    case T_STRING:
        return k->size == MOLT_PATH_MAX;
    case T_MASK:
        return k->size == sizeof(unsigned);
    }
    return 0;
}

void molt_config_defaults(molt_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NKEYS; i++) {
        /* Only a broken table line can fail here (reported, then abort). */
        if (!size_ok(&KEYS[i])) {
            MOLT_ERROR(MOLT_ERR_INTERNAL, "config table: %s.%s has the wrong field type",
                       KEYS[i].section, KEYS[i].key);
            abort();
        }
        if (parse_value(&KEYS[i], KEYS[i].def, c, "config table default") != MOLT_OK) abort();
    }
}

/* ---- INI files and strings ------------------------------------------- */

typedef struct {
    molt_config *cfg;
    const char *name; /* FILE in messages */
    FILE *file;       /* read from this, or */
    const char *text; /* from this string */
    int line;         /* of the line last handed to inih */
    int rc;           /* first error; ends the stream */
} ini_source;

static int next_char(ini_source *s) {
    if (s->file) return getc(s->file);
    return *s->text ? (unsigned char)*s->text++ : EOF;
}

/* inih's rule: ';' after a blank starts an inline comment. Returns the first
 * of `chars` before any comment, or NULL. */
static const char *find_before_comment(const char *s, const char *chars) {
    int was_space = 0;
    for (; *s; s++) {
        if (strchr(chars, *s)) return s;
        if (was_space && *s == ';') return NULL;
        was_space = isspace((unsigned char)*s);
    }
    return NULL;
}

/* The line's shape, checked before inih sees it so the first error in the
 * file is the one reported: blank, comment, [known section] or key = value. */
static int check_line(ini_source *s, const char *line) {
    int rc = MOLT_OK;
    if (s->line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3; /* UTF-8 BOM */
    while (isspace((unsigned char)*line))
        line++;
    if (!*line || *line == ';' || *line == '#') goto done;
    if (*line == '[') {
        const char *end = find_before_comment(line + 1, "]");
        const char *rest = end ? end + 1 : NULL;
        while (rest && isspace((unsigned char)*rest))
            rest++;
        if (!end || (*rest && *rest != ';' && *rest != '#'))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%d: syntax error (expected [section] or key = value)",
                      s->name, s->line);
        char section[64];
        size_t len = (size_t)(end - line - 1);
        snprintf(section, sizeof section, "%.*s", (int)len, line + 1);
        if (len >= sizeof section || !section_known(section)) {
            char list[LIST_TEXT_MAX];
            section_list(list, sizeof list);
            MOLT_FAIL(MOLT_ERR_INPUT, "%s:%d: [%.*s]: unknown section (allowed: %s)", s->name,
                      s->line, (int)(len > 80 ? 80 : len), line + 1, list);
        }
    } else if (!find_before_comment(line, "=:")) {
        MOLT_FAIL(MOLT_ERR_INPUT, "%s:%d: syntax error (expected [section] or key = value)",
                  s->name, s->line);
    }
done:
    return rc;
}

/* fgets-style reader for inih: one line without its terminator and without
 * leading blanks (inih would take an indented line for a continuation).
 * Lines of more than num - 1 characters are errors, not split. */
static char *read_line(char *str, int num, void *stream) {
    ini_source *s = stream;
    if (s->rc != MOLT_OK) return NULL;
    int ch = next_char(s);
    if (ch == EOF) return NULL;
    s->line++;
    size_t cap = (size_t)num - 1, len = 0, raw = 0;
    int last = 0, leading = 1;
    for (; ch != EOF && ch != '\n'; ch = next_char(s)) {
        raw++;
        last = ch;
        if (leading && is_blank(ch)) continue;
        leading = 0;
        if (len < cap) str[len++] = (char)ch;
    }
    if (last == '\r') { /* CRLF file */
        raw--;
        if (len) len--;
    }
    if (raw > cap) {
        s->rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s:%d: line longer than %zu characters", s->name,
                           s->line, cap);
        return NULL;
    }
    str[len] = '\0';
    s->rc = check_line(s, str);
    return s->rc == MOLT_OK ? str : NULL;
}

static int on_key(void *user, const char *section, const char *name, const char *value) {
    ini_source *s = user;
    char where[MOLT_PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", s->name, s->line);
    if (!value) /* inih built with INI_ALLOW_NO_VALUE; check_line already rejects these */
        s->rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s: syntax error (expected [section] or key = value)",
                           where);
    else
        s->rc = assign(s->cfg, section, name, value, where);
    return s->rc == MOLT_OK;
}

/* Parse into a copy, so a failed file leaves `c` as it was. */
static int parse_ini(molt_config *c, ini_source *s) {
    int rc = MOLT_OK;
    molt_config tmp;
    memcpy(&tmp, c, sizeof tmp);
    s->cfg = &tmp;
    int ret = ini_parse_stream(read_line, s, on_key, s);
    if (s->rc != MOLT_OK) {
        rc = s->rc; /* reported where it was found */
        goto done;
    }
    if (s->file && ferror(s->file))
        MOLT_FAIL(MOLT_ERR_INTERNAL, "error reading config %s: %s", s->name, strerror(errno));
    if (ret == -2) MOLT_FAIL(MOLT_ERR_INTERNAL, "out of memory parsing config %s", s->name);
    if (ret > 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s:%d: syntax error (expected [section] or key = value)",
                  s->name, ret);
    if (ret != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "inih failed (%d) on config %s", ret, s->name);
    memcpy(c, &tmp, sizeof tmp);
done:
    return rc;
}

int molt_config_load(molt_config *c, const char *path) {
    int rc = MOLT_OK;
    struct stat st;
    FILE *f = NULL;
    if (stat(path, &st) != 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "cannot open config %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        MOLT_FAIL(MOLT_ERR_INPUT, "config %s is not a regular file", path);
    f = fopen(path, "r");
    if (!f) MOLT_FAIL(MOLT_ERR_INPUT, "cannot open config %s: %s", path, strerror(errno));
    ini_source s = {.name = path, .file = f};
    rc = parse_ini(c, &s);
    if (rc == MOLT_OK) copy_field(c->source, path, strlen(path));
done:
    if (f) fclose(f);
    return rc;
}

int molt_config_load_string(molt_config *c, const char *text, const char *name) {
    ini_source s = {.name = name ? name : "config", .text = text};
    int rc = parse_ini(c, &s);
    if (rc == MOLT_OK) copy_field(c->source, name ? name : "", name ? strlen(name) : 0);
    return rc;
}

int molt_config_set(molt_config *c, const char *assignment) {
    int rc = MOLT_OK;
    char *copy = NULL;
    size_t n = strlen(assignment);
    MOLT_ALLOC(copy, n + 1);
    memcpy(copy, assignment, n);
    char *eq = strchr(copy, '=');
    char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
    if (!dot) MOLT_FAIL(MOLT_ERR_INPUT, "--set \"%.80s\": expected section.key=value", assignment);
    *eq = *dot = '\0';
    char *section = trim(copy), *key = trim(dot + 1), *value = trim(eq + 1);
    if (!*section || !*key)
        MOLT_FAIL(MOLT_ERR_INPUT, "--set \"%.80s\": expected section.key=value", assignment);
    rc = assign(c, section, key, value, "--set");
done:
    free(copy);
    return rc;
}

/* ---- validation ------------------------------------------------------ */

/* ---- mixture of experts --------------------------------------------- */

/* Parse moe.num_experts: "N" or "C1xL1,C2xL2,...". Fills counts[0..n_layers)
 * when counts is not NULL. Returns MOLT_OK or MOLT_ERR_INPUT with a message. */
static int parse_experts(const char *text, int n_layers, int *counts, const char *src) {
    int rc = MOLT_OK, layer = 0;
    const char *s = text;
    char *end = NULL;
    if (!strchr(text, 'x')) {
        long n = strtol(text, &end, 10);
        if (end == text || *end || n < 1 || n > 4096)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.num_experts: \"%s\" is not a count in 1 .. 4096 or "
                      "a per-layer list like 2x8,4x8", src, text);
        for (int l = 0; counts && l < n_layers; l++) counts[l] = (int)n;
        goto done;
    }
    while (*s) {
        long cnt = strtol(s, &end, 10);
        if (end == s || *end != 'x' || cnt < 1 || cnt > 4096)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.num_experts: bad item at \"%s\" (expected "
                      "COUNTxLAYERS, COUNT in 1 .. 4096)", src, s);
        s = end + 1;
        long nl = strtol(s, &end, 10);
        /* bounded: a huge LAYERS made the loop below run ~forever (fuzz_config) */
        if (end == s || (*end && *end != ',') || nl < 1 || nl > MOLT_MAX_LAYERS)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.num_experts: bad layer count at \"%s\" (LAYERS "
                      "in 1 .. %d)", src, s, MOLT_MAX_LAYERS);
        for (long i = 0; i < nl; i++, layer++)
            if (counts && layer < n_layers) counts[layer] = (int)cnt;
        s = *end ? end + 1 : end;
    }
    if (layer != n_layers)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.num_experts \"%s\" describes %d layers but "
                  "model.n_layers is %d", src, text, layer, n_layers);
done:
    return rc;
}

int molt_config_experts(const molt_config *c, int layer) {
    int counts[MOLT_MAX_LAYERS];
    if (c->moe.placement == MOLT_PLACE_NONE || c->moe.placement == MOLT_PLACE_XATTN ||
        layer < 0 || layer >= c->model.n_layers || c->model.n_layers > MOLT_MAX_LAYERS)
        return 0;
    if (parse_experts(c->moe.num_experts, c->model.n_layers, counts, "config") != MOLT_OK) return 0;
    return counts[layer];
}

int molt_config_xattn_experts(const molt_config *c) {
    int n = 0;
    if (c->moe.placement != MOLT_PLACE_XATTN || !c->moe.enable) return 0;
    if (parse_experts(c->moe.num_experts, 1, &n, "config") != MOLT_OK) return 0;
    return n;
}

double molt_config_top_p(const molt_config *c) {
    if (c->moe.top_p > 0) return c->moe.top_p;
    return c->moe.router == MOLT_ROUTER_TOPP ? 0.8 : 0.75;
}

static int validate_moe(const molt_config *c, const char *src) {
    int rc = MOLT_OK;
    const unsigned mlp = (1u << MOLT_PROJ_GATE) | (1u << MOLT_PROJ_UP) | (1u << MOLT_PROJ_DOWN);
    if (c->moe.placement == MOLT_PLACE_NONE) goto done;
    if (c->model.n_layers > MOLT_MAX_LAYERS)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: model.n_layers %d exceeds %d with experts", src,
                  c->model.n_layers, MOLT_MAX_LAYERS);
    if (c->moe.placement == MOLT_PLACE_XATTN) { /* one module, on the feature tokens */
        MOLT_TRY(parse_experts(c->moe.num_experts, 1, NULL, src));
        if (c->model.n_layers >= MOLT_MAX_LAYERS) /* its site is layer n_layers */
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = xattn needs model.n_layers < %d", src,
                      MOLT_MAX_LAYERS);
        if (c->model.projector == MOLT_PROJECTOR_NONE)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = xattn acts on projected feature "
                      "tokens: set model.projector = mlp2x_gelu", src);
        if (c->moe.router != MOLT_ROUTER_SOFT)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = xattn is Parrot's dense mixture over "
                      "all experts: it needs moe.router = soft, not %s", src,
                      molt_router_names[c->moe.router]);
        if (c->moe.aux)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = xattn has no auxiliary loss (as the "
                      "reference): leave moe.aux empty", src);
        if (c->moe.capacity_factor > 0)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = xattn is dropless: "
                      "moe.capacity_factor must be 0", src);
        if (c->moe.dispatch != MOLT_DISPATCH_ALLTOALL && c->moe.dispatch != MOLT_DISPATCH_REPLICATE)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = xattn: moe.dispatch must be alltoall "
                      "or replicate", src);
        if (c->moe.expert_d_ff <= 0)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = xattn needs moe.expert_d_ff (each "
                      "expert's hidden width)", src);
        goto done;
    }
    MOLT_TRY(parse_experts(c->moe.num_experts, c->model.n_layers, NULL, src));
    if (c->moe.router == MOLT_ROUTER_FACTOR && c->moe.placement != MOLT_PLACE_FFN)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.router = factor needs moe.placement = ffn (FactorLLM "
                  "routes full FFN experts), not %s", src, placement_names[c->moe.placement]);
    if (c->moe.placement == MOLT_PLACE_PLUGIN) {
        if (!c->moe.targets)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = plugin needs moe.targets", src);
        if (c->moe.targets & c->lora.targets)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: a projection is in both lora.targets and moe.targets: "
                      "with plugin experts it gets experts, not a shared LoRA", src);
    }
    if (c->moe.placement == MOLT_PLACE_FUSED_MLP && (c->lora.targets & mlp))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = fused_mlp puts LoRA experts on "
                  "gate/up/down_proj: lora.targets may only name attention projections", src);
    if (c->moe.placement == MOLT_PLACE_FFN && (c->lora.targets & mlp))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.placement = ffn replaces the dense FFN: lora.targets "
                  "may only name attention projections", src);
    if ((c->moe.aux & (1u << MOLT_AUX_DYNMOLE)) && c->moe.router != MOLT_ROUTER_DYNMOLE)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.aux = dynmole is the loss of moe.router = dynmole, "
                  "not %s", src, molt_router_names[c->moe.router]);
    if ((c->moe.aux & (1u << MOLT_AUX_PA)) && c->moe.placement != MOLT_PLACE_FFN)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.aux = pa compares full FFN experts with the dense FFN "
                  "they came from: it needs moe.placement = ffn", src);
    if ((c->moe.aux & (1u << MOLT_AUX_PA)) && c->parallel.ep != 1)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: moe.aux = pa runs every expert on every token of its rank: "
                  "it needs parallel.ep = 1 (the experts replicated)", src);
done:
    return rc;
}

int molt_config_validate(const molt_config *c) {
    int rc = MOLT_OK;
    const char *src = c->source[0] ? c->source : "config";
    /* Each key alone: its value must read back through its own parser. */
    for (int i = 0; i < NKEYS; i++) {
        char text[VALUE_TEXT_MAX];
        molt_config scratch;
        value_text(&KEYS[i], c, text, sizeof text);
        rc = parse_value(&KEYS[i], text, &scratch, src);
        if (rc != MOLT_OK) goto done;
    }
    const int d = c->model.d_model, h = c->model.n_heads, kv = c->model.n_kv_heads;
    if (d % h)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: model.d_model (%d) is not divisible by model.n_heads (%d)",
                  src, d, h);
    if ((d / h) % 2)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: head size model.d_model / model.n_heads = %d / %d = %d must be even (RoPE "
                  "rotates pairs)",
                  src, d, h, d / h);
    if (h % kv)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: model.n_heads (%d) is not divisible by model.n_kv_heads (%d)", src, h, kv);
    if (c->train.seq_len > c->model.max_seq_len)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: train.seq_len (%d) exceeds model.max_seq_len (%d)", src,
                  c->train.seq_len, c->model.max_seq_len);
    if (c->train.min_lr > c->train.lr)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: train.min_lr (%g) exceeds train.lr (%g)", src,
                  c->train.min_lr, c->train.lr);
    if (c->train.steps > 0 && c->train.warmup > c->train.steps)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: train.warmup (%d) exceeds train.steps (%d)", src,
                  c->train.warmup, c->train.steps);
    if (c->model.mode == MOLT_MODE_PEFT && !c->lora.targets && !c->lora.train_norms &&
        c->moe.placement == MOLT_PLACE_NONE && c->model.projector == MOLT_PROJECTOR_NONE)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: model.mode = peft trains nothing: set lora.targets or lora.train_norms",
                  src);
    /* The rank only matters when adapters exist. */
    if (c->lora.targets) {
        int limit = d < c->model.d_ff ? d : c->model.d_ff;
        if (c->lora.r > limit)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: lora.r (%d) exceeds min(model.d_model, model.d_ff) = %d",
                      src, c->lora.r, limit);
    }
    MOLT_TRY(validate_moe(c, src));
    if (c->data.source != MOLT_DATA_TASKS && c->data.source != MOLT_DATA_MMMB &&
        !c->data.train_path[0])
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: data.source = %s needs data.train_path", src,
                  source_names[c->data.source]);
    if (c->data.source == MOLT_DATA_FEATURES && !c->data.train_features[0])
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: data.source = features needs data.train_features", src);
    if (c->data.source == MOLT_DATA_FEATURES && c->data.eval_path[0] && !c->data.eval_features[0])
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: data.eval_path needs data.eval_features", src);
    if (c->data.source == MOLT_DATA_FEATURES && c->data.eval_features[0] && !c->data.eval_path[0])
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: data.eval_features needs data.eval_path (its JSONL)", src);
    if (c->data.source == MOLT_DATA_MMMB) { /* the mix fails here, not at the first batch */
        double cum[MOLT_MMMB_LANGS];
        MOLT_TRY(molt_mmmb_parse_mix(c->data.lang_mix, "data.lang_mix", cum));
    }
    const int featured = c->data.source == MOLT_DATA_FEATURES ||
                         (c->data.source == MOLT_DATA_MMMB && !c->data.mmmb_caption);
    if (featured && c->model.projector == MOLT_PROJECTOR_NONE)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: data.source = %s carries feature tokens: set "
                  "model.projector = mlp2x_gelu", src, source_names[c->data.source]);
    if (!featured && c->model.projector != MOLT_PROJECTOR_NONE)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: model.projector = %s needs feature inputs "
                  "(data.source = mmmb_lite or features)", src, projector_names[c->model.projector]);
done:
    return rc;
}

/* ---- output ---------------------------------------------------------- */

/* Growing text: with buf NULL only counts, so to_ini sizes then writes. */
typedef struct {
    char *buf;
    size_t cap, len;
} text_out;

static void out_printf(text_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(text_out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(o->buf ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n;
}

static void write_ini(const molt_config *c, text_out *o) {
    for (int i = 0; i < NKEYS; i++) {
        const key_spec *k = &KEYS[i];
        if (i == 0 || strcmp(k->section, KEYS[i - 1].section) != 0)
            out_printf(o, "%s[%s]\n", i ? "\n" : "", k->section);
        char text[VALUE_TEXT_MAX];
        value_text(k, c, text, sizeof text);
        out_printf(o, "%s =%s%s\n", k->key, text[0] ? " " : "", text);
    }
}

char *molt_config_to_ini(const molt_config *c) {
    int rc = MOLT_OK;
    char *buf = NULL;
    text_out count = {0};
    write_ini(c, &count);
    MOLT_ALLOC(buf, count.len + 1);
    text_out out = {buf, count.len + 1, 0};
    write_ini(c, &out);
done:
    return rc == MOLT_OK ? buf : NULL;
}

void molt_config_print_keys(FILE *out) {
    int wname = 0, wdef = 0;
    for (int i = 0; i < NKEYS; i++) {
        int n = (int)(strlen(KEYS[i].section) + 1 + strlen(KEYS[i].key));
        int dn = KEYS[i].def[0] ? (int)strlen(KEYS[i].def) : 2;
        if (n > wname) wname = n;
        if (dn > wdef) wdef = dn;
    }
    for (int i = 0; i < NKEYS; i++) {
        const key_spec *k = &KEYS[i];
        if (i > 0 && strcmp(k->section, KEYS[i - 1].section) != 0) fprintf(out, "\n");
        char name[96], allowed[LIST_TEXT_MAX];
        snprintf(name, sizeof name, "%s.%s", k->section, k->key);
        allowed_text(k, allowed, sizeof allowed);
        fprintf(out, "  %-*s  %-6s  default=%-*s  %s — %s\n", wname, name, type_names[k->type],
                wdef, k->def[0] ? k->def : "\"\"", allowed, k->help);
    }
}
