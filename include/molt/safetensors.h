/* safetensors.h — Hugging Face safetensors files (DESIGN §8): a validating
 * reader of F32, F16 and BF16 tensors and a streaming F32 writer.
 *
 * A file is: u64 little-endian N, N bytes of UTF-8 JSON (the header), then
 * the data section. The header is one object:
 *   {"__metadata__": {"format": "pt"},
 *    "model.norm.weight": {"dtype": "BF16", "shape": [4096], "data_offsets": [0, 8192]}, ...}
 * with offsets relative to the start of the data section.
 *
 * The reader treats every file as outside input. Before anything sized by
 * the file is allocated:
 *   - the file has at least 8 bytes; 2 <= N <= MOLT_ST_HEADER_MAX (100 MB,
 *     the reference implementation's bound) and N <= file size - 8;
 * then, on the N header bytes (one allocation of N + 1), before cJSON runs:
 *   - valid UTF-8 without NUL bytes, and at most MOLT_ST_MAX_NODES JSON
 *     values (a 100 MB array of zeros would otherwise become gigabytes of
 *     cJSON nodes);
 * and after parsing:
 *   - one JSON object followed only by blanks;
 *   - "__metadata__", if present, an object of strings;
 *   - every other member a tensor: "dtype" one of the safetensors dtypes,
 *     "shape" at most MOLT_ST_MAX_DIMS non-negative integers, "data_offsets"
 *     [begin, end] integers with begin <= end <= data size, and
 *     numel x dtype size == end - begin, computed without overflow;
 *   - names unique; no two tensors share a byte (sorted by begin, each
 *     non-empty tensor starts at or after the previous one's end). Gaps and
 *     trailing bytes are tolerated (the reference refuses them; they cannot
 *     make a read go wrong).
 * Every violation is MOLT_ERR_INPUT with the file, the tensor when there is
 * one, and the problem. Reads check each fread and convert F16/BF16 exactly
 * (every half and bfloat16 value, subnormals, infinities and NaNs included,
 * is a float32 value). Byte order is decoded explicitly: any host works. */
#ifndef MOLT_SAFETENSORS_H
#define MOLT_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MOLT_ST_HEADER_MAX 100000000ull
#define MOLT_ST_MAX_DIMS 8
#define MOLT_ST_MAX_NODES (1u << 22)

/* The safetensors dtypes. molt reads the first three (MOLT_ST_NFLOAT). */
typedef enum {
    MOLT_ST_F32 = 0,
    MOLT_ST_F16,
    MOLT_ST_BF16,
    MOLT_ST_F64,
    MOLT_ST_I64,
    MOLT_ST_I32,
    MOLT_ST_I16,
    MOLT_ST_I8,
    MOLT_ST_U8,
    MOLT_ST_BOOL,
    MOLT_ST_U16,
    MOLT_ST_U32,
    MOLT_ST_U64,
    MOLT_ST_F8_E4M3,
    MOLT_ST_F8_E5M2,
    MOLT_ST_NDTYPES
} molt_st_dtype;
enum { MOLT_ST_NFLOAT = MOLT_ST_BF16 + 1 };
extern const char *const molt_st_dtype_names[MOLT_ST_NDTYPES]; /* "F32", "F16", "BF16", … */
size_t molt_st_dtype_size(int dtype);

typedef struct {
    char *name;
    int dtype, ndim;
    uint64_t shape[MOLT_ST_MAX_DIMS];
    uint64_t numel;      /* product of shape (1 for a scalar) */
    uint64_t begin, end; /* byte range in the data section */
} molt_st_tensor;

typedef struct {
    molt_st_tensor *tensors; /* sorted by begin */
    int *by_name;            /* indices into tensors, sorted by name */
    int n;
    uint64_t header_len, data_len; /* N; file size - 8 - N */
} molt_st_header;

/* The 8-byte prefix of a file of `file_size` bytes: sets *n = N after the
 * bounds above. `fname` labels errors. */
int molt_st_header_length(const unsigned char prefix[8], uint64_t file_size, const char *fname,
                          uint64_t *n);
/* Parse and validate N header bytes (`text`, not NUL-terminated) for a data
 * section of `data_len` bytes. On error *h is empty (free is still safe). */
int molt_st_header_parse(const char *text, size_t n, uint64_t data_len, const char *fname,
                         molt_st_header *h);
void molt_st_header_free(molt_st_header *h);
/* The tensor called `name`, or NULL. */
const molt_st_tensor *molt_st_header_find(const molt_st_header *h, const char *name);
/* "[4096, 32000]" into buf. */
void molt_st_shape_text(const molt_st_tensor *t, char *buf, size_t n);

/* `count` little-endian values of a float dtype (< MOLT_ST_NFLOAT) -> float32. */
void molt_st_to_f32(int dtype, const unsigned char *src, size_t count, float *dst);

/* An open file whose header passed every check. */
typedef struct {
    FILE *f;
    char *path;
    molt_st_header h;
} molt_st_file;

int molt_st_open(molt_st_file *sf, const char *path);
/* Read tensor t (of sf) as float32 into out[t->numel]. A dtype other than
 * F32/F16/BF16 is MOLT_ERR_INPUT naming the file and tensor. */
int molt_st_read_f32(molt_st_file *sf, const molt_st_tensor *t, float *out);
void molt_st_close(molt_st_file *sf);

/* Writing: the header is written first from the specs, then each tensor's
 * data in spec order, to path.tmp; close fsyncs and renames it to path. The
 * header carries __metadata__ {"format": "pt"} (what transformers expects)
 * and is padded with blanks so that the data starts 8-byte aligned. */
typedef struct {
    const char *name; /* kept by the caller until close */
    int ndim;         /* 1 or 2 */
    uint64_t shape[2];
} molt_st_spec;

typedef struct {
    FILE *f;
    char *path, *tmp;
    const molt_st_spec *specs;
    int n, next;
    unsigned char *buf; /* encoding buffer */
} molt_st_writer;

int molt_st_writer_open(molt_st_writer *w, const char *path, const molt_st_spec *specs, int n);
/* The next tensor's data (float32, shape of its spec). */
int molt_st_writer_put(molt_st_writer *w, const float *data);
/* Fails unless every tensor was put; on any failure the .tmp is removed. */
int molt_st_writer_close(molt_st_writer *w);
/* Drop a writer after a failure (removes path.tmp). */
void molt_st_writer_abort(molt_st_writer *w);

/* ---- Hugging Face LLaMA interchange (molt import / molt export) ----
 * config.json keys and the [model] keys they are: one table for both
 * directions. `field` is the offset of the value in molt_config. */
typedef enum { MOLT_HF_INT = 0, MOLT_HF_NUMBER, MOLT_HF_BOOL } molt_hf_type;
typedef struct {
    const char *hf, *molt; /* "hidden_size", "d_model" */
    int type;              /* molt_hf_type: int, double or int-as-bool in molt_config */
    size_t field;
    const char *hf_default; /* LlamaConfig's default when the key is absent; NULL: required */
} molt_hf_key;
extern const molt_hf_key molt_hf_config_keys[];
extern const int molt_hf_n_config_keys;

/* The Hugging Face name of the molt parameter at registry path `path`
 * (DESIGN §7-§8). Base weights keep their name ("base/model.norm.weight" ->
 * "model.norm.weight", or "base_model.model.model.norm.weight" with `peft`);
 * the rest are PEFT-style, under base_model.model.:
 *   adapters/<m>/shared/lora_A         -> <m>.lora_A.weight
 *   adapters/<m>/expert_005/lora_B     -> <m>.experts.5.lora_B.weight
 *   routers/<m>/weight (bias)          -> <m>.router.weight (.bias)
 *   experts/<m>/expert_005/up_proj.weight -> <m>.experts.5.up_proj.weight
 *   projector/model.mm_projector.0.weight -> model.mm_projector.0.weight
 * MOLT_ERR_INTERNAL for a path of no known form, or a name longer than n. */
int molt_hf_name(const char *path, int peft, char *out, size_t n);

#endif
