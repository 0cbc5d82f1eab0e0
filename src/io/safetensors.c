/* safetensors.c — see include/molt/safetensors.h. Reads top to bottom:
 * dtypes and conversion, the header checks (prefix, bytes, JSON, tensors,
 * layout), files, the writer. */
#define _POSIX_C_SOURCE 200809L
#include "molt/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "molt/config.h"
#include "molt/err.h"

/* ---------------- dtypes ---------------- */

const char *const molt_st_dtype_names[MOLT_ST_NDTYPES] = {
    "F32", "F16",  "BF16", "F64", "I64", "I32",     "I16",    "I8",
    "U8",  "BOOL", "U16",  "U32", "U64", "F8_E4M3", "F8_E5M2"};
static const unsigned char dtype_bytes[MOLT_ST_NDTYPES] = {4, 2, 2, 8, 8, 4, 2, 1,
                                                           1, 1, 2, 4, 8, 1, 1};

size_t molt_st_dtype_size(int dtype) {
    return dtype >= 0 && dtype < MOLT_ST_NDTYPES ? dtype_bytes[dtype] : 0;
}

static float bits_to_float(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* IEEE binary16 -> binary32, exact. Subnormals are man * 2^-24, a normal
 * float32; infinities and NaNs keep sign and payload. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | man << 13);
    if (exp) return bits_to_float(sign | (exp + 112u) << 23 | man << 13);
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
}

void molt_st_to_f32(int dtype, const unsigned char *src, size_t count, float *dst) {
    for (size_t i = 0; i < count; i++) {
        const unsigned char *p = src + i * dtype_bytes[dtype];
        switch (dtype) {
        case MOLT_ST_F32:
            dst[i] = bits_to_float((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                   (uint32_t)p[3] << 24);
            break;
        case MOLT_ST_F16:
            dst[i] = half_to_float((uint16_t)(p[0] | p[1] << 8));
            break;
        default:
            dst[i] = bits_to_float((uint32_t)p[0] << 16 | (uint32_t)p[1] << 24);
            break; /* BF16 */
        }
    }
}

void molt_st_shape_text(const molt_st_tensor *t, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%" PRIu64, d ? ", " : "", t->shape[d]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* ---------------- header: prefix and raw bytes ---------------- */

int molt_st_header_length(const unsigned char prefix[8], uint64_t file_size, const char *fname,
                          uint64_t *n) {
    int rc = MOLT_OK;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | prefix[i];
    *n = 0;
    if (file_size < 8)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %" PRIu64 " bytes, too short for a safetensors file", fname,
                  file_size);
    if (v < 2)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: header length %" PRIu64 " is too short for a JSON object",
                  fname, v);
    if (v > MOLT_ST_HEADER_MAX)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: header length %" PRIu64 " exceeds the limit of %llu bytes (not a "
                  "safetensors file?)",
                  fname, v, MOLT_ST_HEADER_MAX);
    if (v > file_size - 8)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: header length %" PRIu64 " runs past the end of the file (%" PRIu64
                  " bytes): truncated, or not a safetensors file",
                  fname, v, file_size);
    *n = v;
done:
    return rc;
}

/* Offset of the first byte that is not valid UTF-8 (overlong forms,
 * surrogates and code points past U+10FFFF are invalid), or n. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

/* An upper bound on the JSON values in text: every value is the root, the
 * first element of a container, or follows a comma. */
static uint64_t json_value_bound(const char *s, size_t n) {
    uint64_t count = 1;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ',' || c == '[' || c == '{') {
            count++;
        }
    }
    return count;
}

static int is_json_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---------------- header: tensors ---------------- */

/* A JSON number that is an integer in [0, 2^53] (exact in a double). */
static int json_count(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return 0;
    *v = (uint64_t)d;
    return 1;
}

static int parse_tensor(const cJSON *j, uint64_t data_len, const char *fname, molt_st_tensor *t) {
    int rc = MOLT_OK;
    const char *name = j->string;
    if (!cJSON_IsObject(j))
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: tensor '%.200s': expected an object with dtype, shape and "
                  "data_offsets",
                  fname, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dtype))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor '%.200s': dtype is missing or not a string", fname,
                  name);
    t->dtype = -1;
    for (int k = 0; k < MOLT_ST_NDTYPES; k++)
        if (!strcmp(dtype->valuestring, molt_st_dtype_names[k])) t->dtype = k;
    if (t->dtype < 0)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: tensor '%.200s': unknown dtype \"%.40s\" (safetensors "
                  "dtypes: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL U16 U32 U64 "
                  "F8_E4M3 F8_E5M2)",
                  fname, name, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor '%.200s': shape is missing or not an array", fname,
                  name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > MOLT_ST_MAX_DIMS)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor '%.200s': %d dimensions (molt reads at most %d)",
                  fname, name, ndim, MOLT_ST_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
        if (!json_count(cJSON_GetArrayItem(shape, d), &t->shape[d]))
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s: tensor '%.200s': shape[%d] is not a non-negative "
                      "integer",
                      fname, name, d);
        overflow |= __builtin_mul_overflow(t->numel, t->shape[d], &t->numel);
    }
    uint64_t bytes = 0;
    overflow |= __builtin_mul_overflow(t->numel, (uint64_t)dtype_bytes[t->dtype], &bytes);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_count(cJSON_GetArrayItem(offs, 0), &t->begin) ||
        !json_count(cJSON_GetArrayItem(offs, 1), &t->end))
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: tensor '%.200s': data_offsets must be [begin, end], two "
                  "non-negative integers",
                  fname, name);
    if (t->begin > t->end)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64
                  "] end before they begin",
                  fname, name, t->begin, t->end);
    if (t->end > data_len)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64
                  "] run past the data section (%" PRIu64 " bytes): truncated "
                  "file?",
                  fname, name, t->begin, t->end, data_len);
    if (overflow || bytes != t->end - t->begin) {
        char s[256];
        molt_st_shape_text(t, s, sizeof s);
        if (overflow)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor '%.200s': shape %s overflows 64-bit sizes", fname,
                      name, s);
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: tensor '%.200s': shape %s of %s needs %" PRIu64
                  " bytes, but data_offsets span %" PRIu64,
                  fname, name, s, molt_st_dtype_names[t->dtype], bytes, t->end - t->begin);
    }
    size_t len = strlen(name);
    MOLT_ALLOC(t->name, len + 1);
    memcpy(t->name, name, len);
done:
    return rc;
}

static int check_metadata(const cJSON *j, const char *fname) {
    int rc = MOLT_OK;
    if (!cJSON_IsObject(j))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: __metadata__ must be an object of strings", fname);
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!cJSON_IsString(it))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: __metadata__ entry '%.200s' is not a string", fname,
                      it->string);
    }
done:
    return rc;
}

static int by_begin(const void *a, const void *b) {
    const molt_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* qsort has no context argument: the name sort reads this (one thread
 * parses at a time in molt; the fuzzers are single-threaded too). */
static const molt_st_tensor *sort_tensors;
static int by_name(const void *a, const void *b) {
    return strcmp(sort_tensors[*(const int *)a].name, sort_tensors[*(const int *)b].name);
}

/* Names unique; non-empty byte ranges disjoint. */
static int check_layout(molt_st_header *h, const char *fname) {
    int rc = MOLT_OK;
    const molt_st_tensor *prev = NULL;
    qsort(h->tensors, (size_t)h->n, sizeof *h->tensors, by_begin);
    for (int i = 0; i < h->n; i++) {
        const molt_st_tensor *t = &h->tensors[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end)
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s: tensors '%.200s' [%" PRIu64 ", %" PRIu64 ") and "
                      "'%.200s' [%" PRIu64 ", %" PRIu64 ") overlap",
                      fname, prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
        prev = t;
    }
    MOLT_ALLOC(h->by_name, h->n);
    for (int i = 0; i < h->n; i++)
        h->by_name[i] = i;
    sort_tensors = h->tensors;
    qsort(h->by_name, (size_t)h->n, sizeof *h->by_name, by_name);
    for (int i = 1; i < h->n; i++)
        if (!strcmp(h->tensors[h->by_name[i]].name, h->tensors[h->by_name[i - 1]].name))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor '%.200s' is defined twice", fname,
                      h->tensors[h->by_name[i]].name);
done:
    return rc;
}

int molt_st_header_parse(const char *text, size_t n, uint64_t data_len, const char *fname,
                         molt_st_header *h) {
    int rc = MOLT_OK;
    cJSON *root = NULL;
    memset(h, 0, sizeof *h);
    h->header_len = n, h->data_len = data_len;
    size_t bad = utf8_invalid_at((const unsigned char *)text, n);
    if (bad < n) MOLT_FAIL(MOLT_ERR_INPUT, "%s: header byte %zu is not valid UTF-8", fname, bad);
    if (memchr(text, '\0', n))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: header contains a NUL byte at %zu", fname,
                  (size_t)((const char *)memchr(text, '\0', n) - text));
    uint64_t values = json_value_bound(text, n);
    if (values > MOLT_ST_MAX_NODES)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: header holds up to %" PRIu64 " JSON values, more than the "
                  "limit of %u",
                  fname, values, MOLT_ST_MAX_NODES);
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: header is not valid JSON (error near byte %zu of %zu)",
                  fname, at, n);
    }
    for (const char *p = end; p < text + n; p++)
        if (!is_json_blank(*p))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: header has data after its JSON object (byte %zu)", fname,
                      (size_t)(p - text));
    if (!cJSON_IsObject(root))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: header is JSON but not an object", fname);
    int members = cJSON_GetArraySize(root);
    MOLT_ALLOC(h->tensors, members > 0 ? members : 1);
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!strcmp(it->string, "__metadata__")) {
            MOLT_TRY(check_metadata(it, fname));
            continue;
        }
        MOLT_TRY(parse_tensor(it, data_len, fname, &h->tensors[h->n]));
        h->n++;
    }
    MOLT_TRY(check_layout(h, fname));
done:
    cJSON_Delete(root);
    if (rc) molt_st_header_free(h);
    return rc;
}

void molt_st_header_free(molt_st_header *h) {
    for (int i = 0; i < h->n; i++)
        free(h->tensors[i].name);
    free(h->tensors);
    free(h->by_name);
    memset(h, 0, sizeof *h);
}

const molt_st_tensor *molt_st_header_find(const molt_st_header *h, const char *name) {
    int lo = 0, hi = h->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, h->tensors[h->by_name[mid]].name);
        if (!c) return &h->tensors[h->by_name[mid]];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---------------- files ---------------- */

static int read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what) {
    if (n && fread(buf, 1, n, f) != n)
        return MOLT_ERROR(MOLT_ERR_INPUT, "%s: cannot read %s: %s", path, what,
                          ferror(f) ? strerror(errno) : "unexpected end of file");
    return MOLT_OK;
}

int molt_st_open(molt_st_file *sf, const char *path) {
    int rc = MOLT_OK;
    struct stat st;
    unsigned char prefix[8] = {0};
    char *text = NULL;
    uint64_t n = 0;
    memset(sf, 0, sizeof *sf);
    size_t plen = strlen(path);
    MOLT_ALLOC(sf->path, plen + 1);
    memcpy(sf->path, path, plen);
    if (!(sf->f = fopen(path, "rb")))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(sf->f), &st) != 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a regular file", path);
    uint64_t size = (uint64_t)st.st_size;
    if (size >= 8) MOLT_TRY(read_exact(sf->f, prefix, 8, path, "the header length"));
    MOLT_TRY(molt_st_header_length(prefix, size, path, &n));
    MOLT_ALLOC(text, n + 1);
    MOLT_TRY(read_exact(sf->f, text, n, path, "the header"));
    MOLT_TRY(molt_st_header_parse(text, n, size - 8 - n, path, &sf->h));
done:
    free(text);
    if (rc) molt_st_close(sf);
    return rc;
}

enum { READ_CHUNK = 1 << 20 };

int molt_st_read_f32(molt_st_file *sf, const molt_st_tensor *t, float *out) {
    int rc = MOLT_OK;
    unsigned char *buf = NULL;
    if (t->dtype >= MOLT_ST_NFLOAT)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: tensor %s has dtype %s; molt reads F32, F16 and BF16",
                  sf->path, t->name, molt_st_dtype_names[t->dtype]);
    size_t es = dtype_bytes[t->dtype], per = READ_CHUNK / es;
    uint64_t at = 8 + sf->h.header_len + t->begin;
    if (at > (uint64_t)INT64_MAX || fseeko(sf->f, (off_t)at, SEEK_SET) != 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot seek to tensor %s: %s", sf->path, t->name,
                  strerror(errno));
    MOLT_ALLOC(buf, READ_CHUNK);
    for (uint64_t i = 0; i < t->numel; i += per) {
        size_t m = t->numel - i < per ? (size_t)(t->numel - i) : per;
        if (fread(buf, es, m, sf->f) != m)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot read tensor %s: %s", sf->path, t->name,
                      ferror(sf->f) ? strerror(errno) : "unexpected end of file");
        molt_st_to_f32(t->dtype, buf, m, out + i);
    }
done:
    free(buf);
    return rc;
}

void molt_st_close(molt_st_file *sf) {
    if (sf->f) fclose(sf->f);
    free(sf->path);
    molt_st_header_free(&sf->h);
    memset(sf, 0, sizeof *sf);
}

/* ---------------- writer ---------------- */

enum { WRITE_CHUNK = 1 << 16 }; /* floats per fwrite */

static uint64_t spec_numel(const molt_st_spec *s) {
    uint64_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= s->shape[d];
    return n;
}

/* Growing text for the header: with buf NULL only counts (two passes). */
typedef struct {
    char *buf;
    size_t len;
} text_out;

static void out_bytes(text_out *o, const char *s, size_t n) {
    if (o->buf) memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void out_json_string(text_out *o, const char *s) {
    out_bytes(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            out_bytes(o, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            out_bytes(o, esc, 6);
        } else {
            out_bytes(o, (const char *)&c, 1);
        }
    }
    out_bytes(o, "\"", 1);
}

/* Integers are printed as integers (cJSON would print doubles). */
static void write_header(text_out *o, const molt_st_spec *specs, int n) {
    char num[96];
    uint64_t at = 0;
    const char *meta = "{\"__metadata__\":{\"format\":\"pt\"}";
    out_bytes(o, meta, strlen(meta));
    for (int i = 0; i < n; i++) {
        const molt_st_spec *s = &specs[i];
        uint64_t bytes = spec_numel(s) * 4;
        out_bytes(o, ",", 1);
        out_json_string(o, s->name);
        const char *head = ":{\"dtype\":\"F32\",\"shape\":[";
        out_bytes(o, head, strlen(head));
        for (int d = 0; d < s->ndim; d++) {
            int len = snprintf(num, sizeof num, "%s%" PRIu64, d ? "," : "", s->shape[d]);
            out_bytes(o, num, (size_t)len);
        }
        int len = snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at,
                           at + bytes);
        out_bytes(o, num, (size_t)len);
        at += bytes;
    }
    out_bytes(o, "}", 1);
}

int molt_st_writer_open(molt_st_writer *w, const char *path, const molt_st_spec *specs, int n) {
    int rc = MOLT_OK;
    text_out hdr = {0};
    memset(w, 0, sizeof *w);
    size_t plen = strlen(path);
    MOLT_ALLOC(w->path, plen + 1);
    MOLT_ALLOC(w->tmp, plen + 5);
    memcpy(w->path, path, plen);
    snprintf(w->tmp, plen + 5, "%s.tmp", path);
    MOLT_ALLOC(w->buf, (size_t)WRITE_CHUNK * 4);
    w->specs = specs, w->n = n;
    write_header(&hdr, specs, n);
    size_t len = hdr.len, padded = (len + 8 + 7) / 8 * 8 - 8;
    MOLT_ALLOC(hdr.buf, len + 1);
    hdr.len = 0;
    write_header(&hdr, specs, n);
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if (!(w->f = fopen(w->tmp, "wb")))
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot create %s: %s", w->tmp, strerror(errno));
    int bad = fwrite(prefix, 1, 8, w->f) != 8 || fwrite(hdr.buf, 1, len, w->f) != len;
    for (size_t i = len; i < padded && !bad; i++)
        bad = fputc(' ', w->f) == EOF;
    if (bad)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write the header: %s", w->tmp, strerror(errno));
done:
    free(hdr.buf);
    if (rc) molt_st_writer_abort(w);
    return rc;
}

int molt_st_writer_put(molt_st_writer *w, const float *data) {
    int rc = MOLT_OK;
    if (w->next >= w->n)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: more tensors written than declared (%d)", w->tmp, w->n);
    uint64_t numel = spec_numel(&w->specs[w->next]);
    for (uint64_t i = 0; i < numel; i += WRITE_CHUNK) {
        size_t m = numel - i < WRITE_CHUNK ? (size_t)(numel - i) : WRITE_CHUNK;
        for (size_t k = 0; k < m; k++) {
            uint32_t b;
            memcpy(&b, &data[i + k], 4);
            for (int j = 0; j < 4; j++)
                w->buf[4 * k + (size_t)j] = (unsigned char)(b >> (8 * j));
        }
        if (fwrite(w->buf, 4, m, w->f) != m)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write tensor %s: %s", w->tmp,
                      w->specs[w->next].name, strerror(errno));
    }
    w->next++;
done:
    return rc;
}

int molt_st_writer_close(molt_st_writer *w) {
    int rc = MOLT_OK;
    if (w->next != w->n)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: %d of %d tensors written", w->tmp, w->next, w->n);
    int bad = fflush(w->f) != 0 || fsync(fileno(w->f)) != 0;
    bad |= fclose(w->f) != 0;
    w->f = NULL;
    if (bad) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: cannot write: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot rename %s to %s: %s", w->tmp, w->path,
                  strerror(errno));
    free(w->path), free(w->tmp), free(w->buf);
    memset(w, 0, sizeof *w);
done:
    if (rc) molt_st_writer_abort(w);
    return rc;
}

void molt_st_writer_abort(molt_st_writer *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) remove(w->tmp);
    free(w->path), free(w->tmp), free(w->buf);
    memset(w, 0, sizeof *w);
}

/* ---------------- Hugging Face LLaMA interchange ---------------- */

#define MODEL_AT(f) offsetof(molt_config, model.f)
/* Defaults are transformers' LlamaConfig's; the shape keys are required. */
const molt_hf_key molt_hf_config_keys[] = {
    {"vocab_size", "vocab_size", MOLT_HF_INT, MODEL_AT(vocab_size), NULL},
    {"hidden_size", "d_model", MOLT_HF_INT, MODEL_AT(d_model), NULL},
    {"num_hidden_layers", "n_layers", MOLT_HF_INT, MODEL_AT(n_layers), NULL},
    {"num_attention_heads", "n_heads", MOLT_HF_INT, MODEL_AT(n_heads), NULL},
    {"num_key_value_heads", "n_kv_heads", MOLT_HF_INT, MODEL_AT(n_kv_heads), ""}, /* = n_heads */
    {"intermediate_size", "d_ff", MOLT_HF_INT, MODEL_AT(d_ff), NULL},
    {"max_position_embeddings", "max_seq_len", MOLT_HF_INT, MODEL_AT(max_seq_len), "2048"},
    {"rms_norm_eps", "norm_eps", MOLT_HF_NUMBER, MODEL_AT(norm_eps), "1e-6"},
    {"rope_theta", "rope_theta", MOLT_HF_NUMBER, MODEL_AT(rope_theta), "10000"},
    {"tie_word_embeddings", "tie_embeddings", MOLT_HF_BOOL, MODEL_AT(tie_embeddings), "false"},
};
const int molt_hf_n_config_keys = (int)(sizeof molt_hf_config_keys / sizeof molt_hf_config_keys[0]);

int molt_hf_name(const char *path, int peft, char *out, size_t n) {
    const char *pre = "base_model.model.";
    const char *slash = strchr(path, '/');
    size_t kind = slash ? (size_t)(slash - path) : 0;
    int len = -1;
    if (kind == 4 && !strncmp(path, "base", 4)) {
        len = snprintf(out, n, "%s%s", peft ? pre : "", slash + 1);
    } else if (kind == 9 && !strncmp(path, "projector", 9)) { /* LLaVA's mm_projector names */
        len = snprintf(out, n, "%s%s", pre, slash + 1);
    } else if (slash) {
        const char *module = slash + 1, *rest = strchr(module, '/');
        int mlen = rest ? (int)(rest - module) : 0;
        const char *tail = rest ? rest + 1 : "";
        int e = -1, used = 0;
        if (!strncmp(tail, "expert_", 7) && sscanf(tail + 7, "%d%n", &e, &used) == 1 &&
            tail[7 + used] == '/')
            tail += 7 + used + 1;
        else
            e = -1;
        if (!rest) {
            len = -1;
        } else if (kind == 8 && !strncmp(path, "adapters", 8) && e >= 0 &&
                   (!strcmp(tail, "lora_A") || !strcmp(tail, "lora_B"))) {
            len = snprintf(out, n, "%s%.*s.experts.%d.%s.weight", pre, mlen, module, e, tail);
        } else if (kind == 8 && !strncmp(path, "adapters", 8) &&
                   (!strcmp(tail, "shared/lora_A") || !strcmp(tail, "shared/lora_B"))) {
            len = snprintf(out, n, "%s%.*s.%s.weight", pre, mlen, module, tail + 7);
        } else if (kind == 7 && !strncmp(path, "routers", 7) && e < 0 &&
                   (!strcmp(tail, "weight") || !strcmp(tail, "bias"))) {
            len = snprintf(out, n, "%s%.*s.router.%s", pre, mlen, module, tail);
        } else if (kind == 7 && !strncmp(path, "experts", 7) && e >= 0 && !strchr(tail, '/')) {
            len = snprintf(out, n, "%s%.*s.experts.%d.%s", pre, mlen, module, e, tail);
        }
    }
    if (len < 0 || (size_t)len >= n)
        return MOLT_ERROR(MOLT_ERR_INTERNAL, "no Hugging Face name for parameter %s", path);
    return MOLT_OK;
}
