/* shard.c — llm.c token shards and the byte tokenizer (DESIGN §8).
 *
 * A shard is 256 little-endian int32 (magic, version, token count, zeros)
 * followed by the tokens: uint16 for magic 20240520 version 1, uint32 for
 * magic 20240801 version 7 (llm.c's llama-3 format). Everything here treats a
 * shard as outside input: nothing in the header is trusted until checked. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "molt/data.h"
#include "molt/err.h"

enum { HEADER_INTS = 256, HEADER_BYTES = HEADER_INTS * 4, WRITE_CHUNK = 1 << 16 };

static uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Open `path` for reading and return its size; regular files only. */
static int open_sized(const char *path, FILE **f, uint64_t *size) {
    int rc = MOLT_OK;
    struct stat st;
    *f = fopen(path, "rb");
    if (!*f) MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(*f), &st) != 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) MOLT_FAIL(MOLT_ERR_INPUT, "%s: not a regular file", path);
    *size = (uint64_t)st.st_size;
done:
    if (rc != MOLT_OK && *f) {
        fclose(*f);
        *f = NULL;
    }
    return rc;
}

static int read_exact(FILE *f, void *buf, size_t n, const char *path) {
    int rc = MOLT_OK;
    if (n && fread(buf, 1, n, f) != n)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: read failed: %s", path,
                  ferror(f) ? strerror(errno) : "unexpected end of file");
done:
    return rc;
}

/* Check the header against the file size; sets the token width in bytes. */
static int check_header(const uint8_t *hdr, uint64_t size, const char *path, size_t *count,
                        int *width) {
    int rc = MOLT_OK;
    uint32_t magic = load_le32(hdr), version = load_le32(hdr + 4);
    int32_t n = (int32_t)load_le32(hdr + 8);
    if (magic == MOLT_SHARD_MAGIC16) {
        *width = 2;
        if (version != 1)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: version %u does not match magic %u (expected 1)", path,
                      version, magic);
    } else if (magic == MOLT_SHARD_MAGIC32) {
        *width = 4;
        if (version != 7)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: version %u does not match magic %u (expected 7)", path,
                      version, magic);
    } else {
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: bad magic %u (expected %d or %d): not an llm.c token shard",
                  path, magic, MOLT_SHARD_MAGIC16, MOLT_SHARD_MAGIC32);
    }
    if (n < 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s: header token count %d is negative", path, n);
    uint64_t want = (uint64_t)n * (uint64_t)*width, have = size - HEADER_BYTES;
    if (have < want)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: truncated: header says %d tokens (%llu bytes) but file has %llu bytes of "
                  "tokens",
                  path, n, (unsigned long long)want, (unsigned long long)have);
    if (have > want)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "%s: trailing bytes: header says %d tokens (%llu bytes) but file has %llu bytes "
                  "of tokens",
                  path, n, (unsigned long long)want, (unsigned long long)have);
    *count = (size_t)n;
done:
    return rc;
}

int molt_shard_read(molt_shard *s, const char *path, int vocab_size) {
    int rc = MOLT_OK;
    FILE *f = NULL;
    uint64_t size = 0;
    uint8_t hdr[HEADER_BYTES];
    int width = 0;
    memset(s, 0, sizeof *s);
    if (strlen(path) >= sizeof s->path)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: path longer than %d bytes", path, MOLT_PATH_MAX - 1);
    if (vocab_size <= 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot check tokens against model.vocab_size %d", path,
                  vocab_size);
    snprintf(s->path, sizeof s->path, "%s", path);
    MOLT_TRY(open_sized(path, &f, &size));
    if (size < HEADER_BYTES)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %llu bytes is shorter than the %d-byte llm.c shard header",
                  path, (unsigned long long)size, HEADER_BYTES);
    MOLT_TRY(read_exact(f, hdr, sizeof hdr, path));
    MOLT_TRY(check_header(hdr, size, path, &s->n, &width));

    /* Read the payload into the 32-bit array, then widen in place from the
     * end: token i's bytes sit at i*width <= 4i, so walking down never
     * overwrites bytes not yet read. */
    MOLT_ALLOC(s->tokens, s->n);
    uint8_t *raw = (uint8_t *)s->tokens;
    MOLT_TRY(read_exact(f, raw, s->n * (size_t)width, path));
    for (size_t i = s->n; i-- > 0;) {
        const uint8_t *p = raw + i * (size_t)width;
        uint32_t v = width == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : load_le32(p);
        s->tokens[i] = v;
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->tokens[i] >= (uint32_t)vocab_size)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: token %u at position %zu is >= model.vocab_size %d",
                      path, s->tokens[i], i, vocab_size);
done:
    if (f && fclose(f) != 0 && rc == MOLT_OK)
        rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: close failed: %s", path, strerror(errno));
    if (rc != MOLT_OK) molt_shard_free(s);
    return rc;
}

void molt_shard_free(molt_shard *s) {
    if (!s) return;
    free(s->tokens);
    s->tokens = NULL;
    s->n = 0;
}

static int write_payload(FILE *f, const uint32_t *tokens, size_t n, int width, const char *tmp) {
    int rc = MOLT_OK;
    uint8_t *buf = NULL;
    MOLT_ALLOC(buf, (size_t)WRITE_CHUNK * 4);
    for (size_t start = 0; start < n; start += WRITE_CHUNK) {
        size_t m = n - start < WRITE_CHUNK ? n - start : WRITE_CHUNK;
        for (size_t i = 0; i < m; i++) {
            uint32_t v = tokens[start + i];
            if (width == 2) {
                buf[2 * i] = (uint8_t)v;
                buf[2 * i + 1] = (uint8_t)(v >> 8);
            } else {
                store_le32(buf + 4 * i, v);
            }
        }
        if (fwrite(buf, (size_t)width, m, f) != m)
            MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: write failed: %s", tmp, strerror(errno));
    }
done:
    free(buf);
    return rc;
}

int molt_shard_write(const char *path, const uint32_t *tokens, size_t n, int wide) {
    int rc = MOLT_OK;
    FILE *f = NULL;
    char *tmp = NULL;
    uint8_t hdr[HEADER_BYTES] = {0};
    int width = wide ? 4 : 2;
    if (n > INT32_MAX)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %zu tokens exceed the llm.c shard limit of %d", path, n,
                  INT32_MAX);
    if (!wide)
        for (size_t i = 0; i < n; i++)
            if (tokens[i] > UINT16_MAX)
                MOLT_FAIL(MOLT_ERR_INPUT,
                          "%s: token %u at position %zu does not fit a uint16 shard (use uint32)",
                          path, tokens[i], i);
    size_t plen = strlen(path);
    MOLT_ALLOC(tmp, plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    store_le32(hdr, wide ? MOLT_SHARD_MAGIC32 : MOLT_SHARD_MAGIC16);
    store_le32(hdr + 4, wide ? 7 : 1);
    store_le32(hdr + 8, (uint32_t)n);
    f = fopen(tmp, "wb");
    if (!f) MOLT_FAIL(MOLT_ERR_INPUT, "%s: cannot create: %s", tmp, strerror(errno));
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: write failed: %s", tmp, strerror(errno));
    MOLT_TRY(write_payload(f, tokens, n, width, tmp));
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: close failed: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
done:
    if (f) fclose(f);
    if (rc != MOLT_OK && tmp) remove(tmp);
    free(tmp);
    return rc;
}

size_t molt_tokenize_bytes(const uint8_t *bytes, size_t n, uint32_t *out) {
    out[0] = MOLT_TOK_BOS;
    for (size_t i = 0; i < n; i++)
        out[1 + i] = bytes[i];
    out[n + 1] = MOLT_TOK_EOS;
    return n + 2;
}

int molt_tokenize_file(const char *path, uint32_t **tokens, size_t *n) {
    int rc = MOLT_OK;
    FILE *f = NULL;
    uint64_t size = 0;
    uint8_t *bytes = NULL;
    MOLT_TRY(open_sized(path, &f, &size));
    if (size > SIZE_MAX / 4 - 2 - *n)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %llu bytes is too large to tokenize in memory", path,
                  (unsigned long long)size);
    MOLT_ALLOC(bytes, size);
    MOLT_TRY(read_exact(f, bytes, (size_t)size, path));
    uint32_t *grown = realloc(*tokens, (*n + (size_t)size + 2) * sizeof **tokens);
    if (!grown)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: out of memory for %llu tokens", path,
                  (unsigned long long)(*n + size + 2));
    *tokens = grown;
    *n += molt_tokenize_bytes(bytes, (size_t)size, grown + *n);
done:
    if (f && fclose(f) != 0 && rc == MOLT_OK)
        rc = MOLT_ERROR(MOLT_ERR_INTERNAL, "%s: close failed: %s", path, strerror(errno));
    free(bytes);
    return rc;
}
