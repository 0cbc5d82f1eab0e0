/* test_shard.c — llm.c shards: byte-exact round trips for both formats, every
 * malformed input rejected with MOLT_ERR_INPUT and a message naming the file,
 * and the byte tokenizer. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "molt/data.h"
#include "molt/err.h"
#include "testutil.h"

static char dir[256];

static void path_in_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static void put32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fwrite(b, 1, 4, f);
}

/* Hand-write a shard: header (magic, version, count), then `n` tokens of
 * `width` bytes, then `extra` junk bytes. */
static void write_raw(const char *path, uint32_t magic, uint32_t version, uint32_t count,
                      const uint32_t *tok, size_t n, int width, size_t extra) {
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    put32(f, magic);
    put32(f, version);
    put32(f, count);
    for (int i = 3; i < 256; i++)
        put32(f, 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t b[4] = {(uint8_t)tok[i], (uint8_t)(tok[i] >> 8), (uint8_t)(tok[i] >> 16),
                        (uint8_t)(tok[i] >> 24)};
        fwrite(b, 1, (size_t)width, f);
    }
    for (size_t i = 0; i < extra; i++)
        fputc(0x5a, f);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

/* Read a file whole (tests only); caller frees. */
static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = malloc(1 << 20);
    *n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Run molt_shard_read with fd 2 sent to a file; returns its code and the
 * captured stderr text in msg. */
static int read_captured(const char *path, int vocab, char *msg, size_t msg_n) {
    char cap[300];
    path_in_dir(cap, sizeof cap, "stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(cap, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    dup2(fileno(f), 2);
    molt_shard s;
    int rc = molt_shard_read(&s, path, vocab);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    CU_ASSERT_PTR_NULL(s.tokens);
    molt_shard_free(&s);
    size_t n = 0;
    uint8_t *text = slurp(cap, &n);
    if (n >= msg_n) n = msg_n - 1;
    memcpy(msg, text, n);
    msg[n] = '\0';
    free(text);
    return rc;
}

static void expect_rejected(const char *path, int vocab, const char *fragment) {
    char msg[2048];
    int rc = read_captured(path, vocab, msg, sizeof msg);
    CU_ASSERT_EQUAL(rc, MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, fragment));
    if (rc != MOLT_ERR_INPUT || !strstr(msg, path) || !strstr(msg, fragment))
        fprintf(stderr, "expected '%s' for %s, got rc %d: %s\n", fragment, path, rc, msg);
}

static void roundtrip(int wide, uint32_t max_token, int vocab) {
    char path[300];
    path_in_dir(path, sizeof path, wide ? "wide.bin" : "narrow.bin");
    size_t n = 100003; /* more than one write chunk */
    uint32_t *tok = malloc(n * sizeof *tok);
    for (size_t i = 0; i < n; i++)
        tok[i] = (uint32_t)((i * 2654435761u) % (max_token + 1));
    tok[0] = max_token;
    tok[1] = 0;
    CU_ASSERT_EQUAL_FATAL(molt_shard_write(path, tok, n, wide), MOLT_OK);

    /* Byte layout: header fields and little-endian tokens of the right width. */
    size_t size = 0;
    uint8_t *raw = slurp(path, &size);
    int width = wide ? 4 : 2;
    CU_ASSERT_EQUAL(size, 1024 + n * (size_t)width);
    uint32_t hdr[3];
    for (int k = 0; k < 3; k++)
        hdr[k] = raw[4 * k] | raw[4 * k + 1] << 8 | raw[4 * k + 2] << 16 |
                 (uint32_t)raw[4 * k + 3] << 24;
    CU_ASSERT_EQUAL(hdr[0], wide ? 20240801u : 20240520u);
    CU_ASSERT_EQUAL(hdr[1], wide ? 7u : 1u);
    CU_ASSERT_EQUAL(hdr[2], n);
    int zeros = 1;
    for (int k = 12; k < 1024; k++)
        zeros &= raw[k] == 0;
    CU_ASSERT(zeros);
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = raw + 1024 + i * (size_t)width;
        uint32_t v = p[0] | p[1] << 8;
        if (wide) v |= (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        same &= v == tok[i];
    }
    CU_ASSERT(same);
    free(raw);

    molt_shard s;
    CU_ASSERT_EQUAL_FATAL(molt_shard_read(&s, path, vocab), MOLT_OK);
    CU_ASSERT_EQUAL(s.n, n);
    CU_ASSERT_STRING_EQUAL(s.path, path);
    CU_ASSERT(memcmp(s.tokens, tok, n * sizeof *tok) == 0);
    molt_shard_free(&s);
    CU_ASSERT_PTR_NULL(s.tokens);
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT(access(tmp, F_OK) != 0); /* renamed away */
    free(tok);
}

static void test_roundtrip_uint16(void) {
    roundtrip(0, 65535, 65536);
}

static void test_roundtrip_uint32(void) {
    roundtrip(1, 128255, 128256); /* llama-3 vocabulary */
}

static void test_empty_shard(void) {
    char path[300];
    path_in_dir(path, sizeof path, "empty.bin");
    CU_ASSERT_EQUAL_FATAL(molt_shard_write(path, NULL, 0, 0), MOLT_OK);
    molt_shard s;
    CU_ASSERT_EQUAL(molt_shard_read(&s, path, 259), MOLT_OK);
    CU_ASSERT_EQUAL(s.n, 0);
    molt_shard_free(&s);
}

static void test_write_rejects_wide_token(void) {
    char path[300];
    path_in_dir(path, sizeof path, "toowide.bin");
    uint32_t tok[3] = {1, 65536, 2};
    CU_ASSERT_EQUAL(molt_shard_write(path, tok, 3, 0), MOLT_ERR_INPUT);
    CU_ASSERT(access(path, F_OK) != 0);
    CU_ASSERT_EQUAL(molt_shard_write(path, tok, 3, 1), MOLT_OK);
    char bad[320];
    path_in_dir(bad, sizeof bad, "no-such-dir/x.bin");
    CU_ASSERT_NOT_EQUAL(molt_shard_write(bad, tok, 3, 1), MOLT_OK);
}

static void test_bad_inputs(void) {
    uint32_t tok[20];
    for (int i = 0; i < 20; i++)
        tok[i] = (uint32_t)i * 3;
    char p[300];

    path_in_dir(p, sizeof p, "truncated.bin");
    write_raw(p, 20240520, 1, 20, tok, 19, 2, 0);
    expect_rejected(p, 259, "truncated: header says 20 tokens (40 bytes) but file has 38 bytes");

    path_in_dir(p, sizeof p, "extra.bin");
    write_raw(p, 20240520, 1, 20, tok, 20, 2, 1);
    expect_rejected(p, 259, "header says 20 tokens (40 bytes) but file has 41 bytes");

    path_in_dir(p, sizeof p, "extra32.bin");
    write_raw(p, 20240801, 7, 19, tok, 20, 4, 0);
    expect_rejected(p, 259, "header says 19 tokens (76 bytes) but file has 80 bytes");

    path_in_dir(p, sizeof p, "magic.bin");
    write_raw(p, 12345, 1, 20, tok, 20, 2, 0);
    expect_rejected(p, 259,
                    "bad magic 12345 (expected 20240520 or 20240801): not an llm.c token shard");

    path_in_dir(p, sizeof p, "version16.bin");
    write_raw(p, 20240520, 7, 20, tok, 20, 2, 0);
    expect_rejected(p, 259, "version 7");

    path_in_dir(p, sizeof p, "version32.bin");
    write_raw(p, 20240801, 1, 20, tok, 20, 4, 0);
    expect_rejected(p, 259, "version 1");

    path_in_dir(p, sizeof p, "negative.bin");
    write_raw(p, 20240520, 1, 0xffffffffu, tok, 0, 2, 0);
    expect_rejected(p, 259, "negative");

    tok[17] = 300;
    path_in_dir(p, sizeof p, "vocab.bin");
    write_raw(p, 20240520, 1, 20, tok, 20, 2, 0);
    expect_rejected(p, 259, "token 300 at position 17 is >= model.vocab_size 259");
    tok[17] = 259;
    write_raw(p, 20240801, 7, 20, tok, 20, 4, 0);
    expect_rejected(p, 259, "token 259 at position 17 is >= model.vocab_size 259");
    molt_shard s;
    CU_ASSERT_EQUAL(molt_shard_read(&s, p, 260), MOLT_OK); /* the boundary */
    molt_shard_free(&s);

    path_in_dir(p, sizeof p, "missing.bin");
    expect_rejected(p, 259, "cannot open");

    path_in_dir(p, sizeof p, "short.bin");
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    put32(f, 20240520);
    put32(f, 1);
    fclose(f);
    expect_rejected(p, 259, "shorter than the 1024-byte");

    /* A directory is not a shard. */
    expect_rejected(dir, 259, "not a regular file");
}

static void test_tokenize_bytes(void) {
    const uint8_t text[] = {'h', 0xc3, 0xa9, 0x00, 0xff};
    uint32_t out[7];
    CU_ASSERT_EQUAL(molt_tokenize_bytes(text, 5, out), 7);
    const uint32_t want[7] = {256, 'h', 0xc3, 0xa9, 0, 255, 257};
    CU_ASSERT(memcmp(out, want, sizeof want) == 0);
    CU_ASSERT_EQUAL(molt_tokenize_bytes(text, 0, out), 2);
    CU_ASSERT_EQUAL(out[0], MOLT_TOK_BOS);
    CU_ASSERT_EQUAL(out[1], MOLT_TOK_EOS);

    char p[300];
    path_in_dir(p, sizeof p, "text.txt");
    FILE *f = fopen(p, "wb");
    fwrite(text, 1, 5, f);
    fclose(f);
    uint32_t *tok = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(molt_tokenize_file(p, &tok, &n), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_tokenize_file(p, &tok, &n), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(n, 14);
    CU_ASSERT(memcmp(tok, want, sizeof want) == 0);
    CU_ASSERT(memcmp(tok + 7, want, sizeof want) == 0);
    path_in_dir(p, sizeof p, "no-such.txt");
    CU_ASSERT_EQUAL(molt_tokenize_file(p, &tok, &n), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(n, 14);
    free(tok);
}

static int run(int argc, char **argv) {
    molt_test_case cases[] = {{"uint16 round trip, byte layout", test_roundtrip_uint16},
                              {"uint32 round trip, byte layout", test_roundtrip_uint32},
                              {"empty shard", test_empty_shard},
                              {"uint16 write rejects wide tokens", test_write_rejects_wide_token},
                              {"malformed shards rejected, path named", test_bad_inputs},
                              {"byte tokenizer", test_tokenize_bytes},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "shard", cases);
}

int main(int argc, char **argv) {
    return molt_run_in_scratch(argc, argv, "shard", dir, sizeof dir, run);
}
