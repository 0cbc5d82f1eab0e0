/* data.h — token data: the built-in task suite, llm.c shards, byte tokenizer,
 * and batches addressed by global sample index.
 *
 * A data source maps a global sample index g to one training sequence; the
 * content of g depends only on (config, split, g), never on the MPI layout, so
 * a rank that owns samples [g0, g0+n) of a global batch reads exactly those. */
#ifndef MOLT_DATA_H
#define MOLT_DATA_H
#include <stddef.h>
#include <stdint.h>

#include "molt/config.h"

/* Byte-level tokenizer: ids 0–255 are bytes. */
enum { MOLT_TOK_BOS = 256, MOLT_TOK_EOS = 257, MOLT_TOK_PAD = 258, MOLT_TOK_MIN_VOCAB = 259 };
/* Targets equal to MOLT_IGNORE carry no loss (padding, prompt tokens). */
#define MOLT_IGNORE (-1)

/* The built-in task suite (DESIGN §8). Each example is
 *   <bos> prompt-bytes answer-bytes <eos> <pad>…
 * with the prompt ending in '=' (e.g. "copy abc=" → "abc").
 * The last four are held out of the quickstart's pretraining: each reuses a
 * skill the base learns (copy, reverse, sort, upper) with another output
 * convention that only its tag names, so the same letters map to different
 * answers under different tags and one shared adapter must serve them all. */
typedef enum {
    MOLT_TASK_COPY = 0, /* "copy xyz=" → "xyz" */
    MOLT_TASK_REVERSE,  /* "rev xyz=" → "zyx" */
    MOLT_TASK_SORT,     /* "sort dbca=" → "abcd" */
    MOLT_TASK_ADD,      /* "add 123+45=" → "168" */
    MOLT_TASK_MOD,      /* "mod 7*9%11=" → "8" (modular arithmetic) */
    MOLT_TASK_BRACKETS, /* "brk (()[])=" → "yes" / "no" (balanced?) */
    MOLT_TASK_COUNT,    /* "cnt a:abaca=" → "3" (count a letter) */
    MOLT_TASK_UPPER,    /* "up hello=" → "HELLO" */
    MOLT_TASK_REVUP,    /* "ru abc=" → "CBA" (reverse, then upper case) */
    MOLT_TASK_SHIFT,    /* "sh abz=" → "bca" (each letter to the next, z to a) */
    MOLT_TASK_DESC,     /* "ds dbca=" → "dcba" (sort, descending) */
    MOLT_TASK_TITLE,    /* "ti hello=" → "Hello" (copy, first letter upper) */
    MOLT_NTASKS
} molt_task;
extern const char *const molt_task_names[MOLT_NTASKS]; /* "copy", "reverse", … */

/* Generate one example of `task` from stream `r` into tokens[0..max_len).
 * Sets *len (tokens written, including <bos> and <eos>) and *prompt_len (number
 * of leading tokens that belong to the prompt, <bos> included). Lengths of the
 * variable parts scale down so that every example fits max_len ≥ 16. */
int molt_task_example(int task, uint64_t seed, int split, uint64_t index, int32_t *tokens,
                      int max_len, int *len, int *prompt_len);

/* Lay one example (tokens[0..len), prompt_len of them prompt) out as a batch
 * row of T positions: inputs[t] = tokens[t] (<pad> past the end), targets[t] =
 * tokens[t+1] where that is an answer token or <eos> (any token when
 * prompt_loss), else MOLT_IGNORE. */
void molt_task_layout(const int32_t *tokens, int len, int prompt_len, int prompt_loss, int T,
                      int32_t *inputs, int32_t *targets);

/* llm.c shard format: 256 x int32 header, then tokens.
 * magic 20240520 version 1: uint16 tokens; magic 20240801 version 7: uint32. */
enum { MOLT_SHARD_MAGIC16 = 20240520, MOLT_SHARD_MAGIC32 = 20240801 };
int molt_shard_write(const char *path, const uint32_t *tokens, size_t n, int wide);

typedef struct {
    char path[MOLT_PATH_MAX];
    uint32_t *tokens; /* all tokens of the shard, widened to 32 bits (owned) */
    size_t n;
} molt_shard;
/* Read and validate a shard: header (magic, version, count), file size equal to
 * header + count × width, every token id < vocab_size. Errors name the path and
 * the offending field or token position; MOLT_ERR_INPUT. */
int molt_shard_read(molt_shard *s, const char *path, int vocab_size);
void molt_shard_free(molt_shard *s);

/* Byte tokenizer for `molt tokenize` and data.source = text: <bos> then the
 * file's bytes then <eos>. `out` must hold n + 2 ids. Returns the count. */
size_t molt_tokenize_bytes(const uint8_t *bytes, size_t n, uint32_t *out);
/* Append the tokenisation of the file at `path` (<bos> bytes <eos>) to the
 * malloc'd array *tokens of *n ids, growing it (caller frees). Errors name the
 * file; MOLT_ERR_INPUT if it cannot be opened or read. */
int molt_tokenize_file(const char *path, uint32_t **tokens, size_t *n);

/* One batch of n_seq sequences of seq_len positions, rows contiguous.
 * Feature sources (mmmb_lite, features) add a span of n_ft feature tokens
 * at positions 1 … n_ft of every row (their input ids are <pad>; the model
 * writes the projected features there) and the prompt's end. */
typedef struct {
    int n_seq, seq_len;
    int32_t *inputs;  /* [n_seq * seq_len] token ids */
    int32_t *targets; /* [n_seq * seq_len] next-token targets or MOLT_IGNORE */
    int *task;        /* [n_seq] task id (tasks), language id (mmmb_lite, features), or -1 */
    int n_ft, feat_dim; /* 0 without features */
    int feat_rows;      /* rows feat and plen have room for */
    float *feat;        /* [n_seq * n_ft * feat_dim], or NULL */
    int *plen;          /* [n_seq] position where the answer starts: the prompt is
                           positions 1 + n_ft … plen - 1 */
} molt_batch;
int molt_batch_alloc(molt_batch *b, int n_seq, int seq_len);
/* Give b room for feature tokens of its n_seq rows (no-op when it has them
 * at this size). */
int molt_batch_features(molt_batch *b, int n_ft, int feat_dim);
void molt_batch_free(molt_batch *b);

enum { MOLT_SPLIT_TRAIN = 0, MOLT_SPLIT_EVAL = 1 };

typedef struct molt_data molt_data;
/* Open the source named by the config (data.source, data.train_path, …). */
int molt_data_open(molt_data **d, const molt_config *c, int split);
/* Fill b with the samples of global indices [first, first + b->n_seq). */
int molt_data_fill(molt_data *d, uint64_t first, molt_batch *b);
void molt_data_close(molt_data *d);

#endif
