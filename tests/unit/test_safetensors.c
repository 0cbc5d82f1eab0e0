/* test_safetensors.c — the safetensors reader and writer
 * (include/molt/safetensors.h) in one process, so every error path runs
 * under LeakSanitizer without a molt start per case:
 *   - each header check: a table of malformed headers, each MOLT_ERR_INPUT
 *     with the file name and the problem in the message; headers at the
 *     edges that must pass (empty, zero-size and scalar tensors, gaps,
 *     __metadata__, trailing blanks);
 *   - conversion: all 65536 half and bfloat16 values against the exact
 *     value computed independently (ldexp), NaN payloads included;
 *   - writer -> reader round trip, with names that need JSON escapes and an
 *     8-byte aligned data section;
 *   - molt_hf_name for every parameter kind;
 *   - `molt import` itself (molt_cmd_import): a good model, a missing tensor
 *     and a truncated file (exit 2, nothing left behind); `molt export`
 *     (molt_cmd_export) of a plugin MoE and a merged LoRA model, --merged
 *     refused for the MoE: the command paths leak-checked in one process;
 *   - inputs the fuzzers (tests/fuzz) found, replayed. */
#define _POSIX_C_SOURCE 200809L
#include "molt/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "molt/config.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/model.h"
#include "testutil.h"

static char dir[256];
static char captured[8192];

static void path_in_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

/* stderr of the calls between begin and end goes to `captured`. */
static int saved_fd = -1;
static FILE *cap_file;
static void capture_begin(void) {
    char p[300];
    path_in_dir(p, sizeof p, "stderr.txt");
    fflush(stderr);
    saved_fd = dup(2);
    cap_file = fopen(p, "w+");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cap_file);
    dup2(fileno(cap_file), 2);
}
static void capture_end(void) {
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    rewind(cap_file);
    size_t n = fread(captured, 1, sizeof captured - 1, cap_file);
    captured[n] = '\0';
    fclose(cap_file);
}

/* Parse the n bytes of `header` as the whole header of a file with
 * `data_len` data bytes. */
static int parse_n(const char *header, size_t n, uint64_t data_len, molt_st_header *h) {
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees a read past it */
    memcpy(copy, header, n);
    int rc = molt_st_header_parse(copy, n, data_len, "x.safetensors", h);
    free(copy);
    return rc;
}

static int parse(const char *header, uint64_t data_len, molt_st_header *h) {
    return parse_n(header, strlen(header), data_len, h);
}

static void expect_bad_n(const char *header, size_t n, uint64_t data_len, const char *fragment) {
    molt_st_header h;
    capture_begin();
    int rc = parse_n(header, n, data_len, &h);
    capture_end();
    int ok = rc == MOLT_ERR_INPUT && strstr(captured, "x.safetensors: ") &&
             strstr(captured, fragment) && h.n == 0 && !h.tensors;
    CU_ASSERT(ok);
    if (!ok)
        fprintf(stderr, "header %.80s: rc %d, wanted '%s', got: %s\n", header, rc, fragment,
                captured);
    molt_st_header_free(&h);
}

static void expect_bad(const char *header, uint64_t data_len, const char *fragment) {
    expect_bad_n(header, strlen(header), data_len, fragment);
}

#define T(dtype, shape, b, e)                                                                      \
    "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"

static void test_bad_headers(void) {
    expect_bad("{\"a\":" T("F32", "[2,2]", "0", "16"), 16, "header is not valid JSON");
    expect_bad("not json at all", 16, "header is not valid JSON");
    expect_bad("{} x", 0, "header has data after its JSON object");
    expect_bad("[1, 2]", 0, "header is JSON but not an object");
    expect_bad_n("{}  \0  ", 7, 0, "header contains a NUL byte at 4");
    expect_bad("{\"a\xff\":1}", 0, "header byte 3 is not valid UTF-8");
    expect_bad("{\"\xc0\x80\":1}", 0, "is not valid UTF-8");     /* overlong NUL */
    expect_bad("{\"\xed\xa0\x80\":1}", 0, "is not valid UTF-8"); /* surrogate */
    expect_bad("{\"a\":" T("F33", "[2,2]", "0", "16") "}", 16, "tensor 'a': unknown dtype \"F33\"");
    expect_bad("{\"a\":" T("F32", "[3,2]", "0", "16") "}", 16,
               "tensor 'a': shape [3, 2] of F32 needs 24 bytes, but data_offsets span 16");
    expect_bad("{\"a\":" T("F32", "[2,2]", "16", "32") "}", 16,
               "tensor 'a': data_offsets [16, 32] run past the data section (16 bytes)");
    expect_bad("{\"a\":" T("F32", "[0]", "8", "4") "}", 16, "data_offsets [8, 4] end before");
    expect_bad("{\"a\":" T("F32", "[2,2]", "0", "16") ",\"b\":" T("F16", "[4]", "8", "16") "}", 16,
               "tensors 'a' [0, 16) and 'b' [8, 16) overlap");
    expect_bad("{\"b\":" T("F16", "[4]", "4", "12") ",\"a\":" T("F32", "[2,2]", "0", "16") "}", 16,
               "tensors 'a' [0, 16) and 'b' [4, 12) overlap");
    expect_bad("{\"a\":" T("U8", "[1]", "0", "1") ",\"a\":" T("U8", "[1]", "1", "2") "}", 2,
               "tensor 'a' is defined twice");
    expect_bad("{\"a\":" T("F32", "[-1]", "0", "0") "}", 0,
               "shape[0] is not a non-negative integer");
    expect_bad("{\"a\":" T("F32", "[1.5]", "0", "6") "}", 8,
               "shape[0] is not a non-negative integer");
    expect_bad("{\"a\":" T("F32", "[\"2\"]", "0", "8") "}", 8, "shape[0] is not a non-negative");
    expect_bad("{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", "0", "4") "}", 4, "9 dimensions");
    expect_bad("{\"a\":" T("F32", "[4294967296,4294967296]", "0", "0") "}", 0,
               "shape [4294967296, 4294967296] overflows 64-bit sizes");
    expect_bad("{\"a\":" T("F64", "[9007199254740992,256]", "0", "0") "}", 0, "overflows 64-bit");
    expect_bad("{\"a\":" T("F32", "[1]", "0", "1e300") "}", 4, "data_offsets must be [begin, end]");
    expect_bad("{\"a\":" T("F32", "[1]", "-4", "0") "}", 4, "data_offsets must be [begin, end]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
               "data_offsets must be [begin, end]");
    expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is missing");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape is missing");
    expect_bad("{\"a\":[1]}", 0, "tensor 'a': expected an object");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ entry 'k' is not a string");
    expect_bad("{\"__metadata__\":[]}", 0, "__metadata__ must be an object of strings");
    /* more values than MOLT_ST_MAX_NODES: refused before cJSON builds them */
    size_t n = 2 * (size_t)MOLT_ST_MAX_NODES + 16;
    char *big = malloc(n + 1);
    memcpy(big, "{\"__metadata__\":[", 17);
    for (size_t i = 17; i + 2 < n; i += 2)
        big[i] = '0', big[i + 1] = ',';
    big[n - 3] = '0', big[n - 2] = ']', big[n - 1] = '}', big[n] = '\0';
    expect_bad(big, 0, "JSON values, more than the limit");
    free(big);
}

static void test_good_headers(void) {
    molt_st_header h;
    CU_ASSERT_EQUAL(parse("{}", 0, &h), MOLT_OK);
    CU_ASSERT_EQUAL(h.n, 0);
    molt_st_header_free(&h);
    /* zero-size tensors anywhere, a scalar, a gap, metadata, trailing blanks */
    const char *ok =
        "{\"__metadata__\":{\"format\":\"pt\"},\"z\":" T("I64", "[0,3]", "8", "8") ",\"s\":" T(
            "BF16", "[]", "6", "8") ",\"w\":" T("F32", "[1]", "0", "4") ",\"e\":" T("F16", "[2,0]",
                                                                                    "0",
                                                                                    "0") "}   \n ";
    CU_ASSERT_EQUAL_FATAL(parse(ok, 12, &h), MOLT_OK);
    CU_ASSERT_EQUAL(h.n, 4);
    const molt_st_tensor *s = molt_st_header_find(&h, "s"), *w = molt_st_header_find(&h, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT(s->ndim == 0 && s->numel == 1 && s->dtype == MOLT_ST_BF16 && s->begin == 6);
    CU_ASSERT(w->numel == 1 && w->end == 4);
    CU_ASSERT_PTR_NULL(molt_st_header_find(&h, "nope"));
    for (int i = 1; i < h.n; i++)
        CU_ASSERT(h.tensors[i - 1].begin <= h.tensors[i].begin);
    molt_st_header_free(&h);
}

static void expect_bad_length(uint64_t n, uint64_t size, const char *fragment) {
    unsigned char p[8];
    uint64_t got = 7;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(n >> (8 * i));
    capture_begin();
    int rc = molt_st_header_length(p, size, "x.safetensors", &got);
    capture_end();
    int ok = rc == MOLT_ERR_INPUT && got == 0 && strstr(captured, "x.safetensors: ") &&
             strstr(captured, fragment);
    CU_ASSERT(ok);
    if (!ok) fprintf(stderr, "length %llu: %s\n", (unsigned long long)n, captured);
}

static void test_header_length(void) {
    expect_bad_length(2, 7, "7 bytes, too short for a safetensors file");
    expect_bad_length(1, 100, "header length 1 is too short");
    expect_bad_length(100000001, 200000000, "exceeds the limit of 100000000 bytes");
    expect_bad_length(UINT64_MAX, 100, "header length 18446744073709551615 exceeds");
    expect_bad_length(93, 100, "header length 93 runs past the end of the file (100 bytes)");
    unsigned char p[8] = {92, 0, 0, 0, 0, 0, 0, 0};
    uint64_t n = 0;
    CU_ASSERT(molt_st_header_length(p, 100, "x", &n) == MOLT_OK && n == 92);
}

/* The value of a binary16 from its fields, computed in double. */
static float half_ref(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (float)(sign ? -v : v);
}

static void test_conversion(void) {
    unsigned char raw[2 * 65536];
    float *out = malloc(65536 * sizeof *out);
    for (int i = 0; i < 65536; i++)
        raw[2 * i] = (unsigned char)i, raw[2 * i + 1] = (unsigned char)(i >> 8);
    molt_st_to_f32(MOLT_ST_F16, raw, 65536, out);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        float r = half_ref((uint16_t)i);
        uint32_t b;
        memcpy(&b, &out[i], 4);
        if (isnan(r)) /* NaN: quiet bit and payload move up 13 bits, sign kept */
            bad += b != ((uint32_t)(i & 0x8000) << 16 | 0x7f800000u | (uint32_t)(i & 0x3ff) << 13);
        else
            bad += memcmp(&r, &out[i], 4) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    molt_st_to_f32(MOLT_ST_BF16, raw, 65536, out);
    bad = 0;
    for (int i = 0; i < 65536; i++) {
        uint32_t b;
        memcpy(&b, &out[i], 4);
        bad += b != (uint32_t)i << 16;
    }
    CU_ASSERT_EQUAL(bad, 0);
    const unsigned char f32[8] = {0x00, 0x00, 0x80, 0x3f, 0x01, 0x00, 0x00, 0x80}; /* 1, -denorm */
    molt_st_to_f32(MOLT_ST_F32, f32, 2, out);
    CU_ASSERT(out[0] == 1.0f && out[1] == -0x1p-149f);
    free(out);
}

static void test_round_trip(void) {
    char path[300];
    path_in_dir(path, sizeof path, "rt.safetensors");
    float a[6] = {1, -2, 0x1p-149f, 3.0e38f, -0.0f, 7}, b[3] = {0.5f, 0.25f, 0.125f};
    molt_st_spec specs[2] = {{"w\"eird\\name\x01", 2, {2, 3}}, {"model.norm.weight", 1, {3, 0}}};
    molt_st_writer w;
    CU_ASSERT_EQUAL_FATAL(molt_st_writer_open(&w, path, specs, 2), MOLT_OK);
    CU_ASSERT_EQUAL(molt_st_writer_put(&w, a), MOLT_OK);
    CU_ASSERT_EQUAL(molt_st_writer_put(&w, b), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_st_writer_close(&w), MOLT_OK);
    molt_st_file f;
    CU_ASSERT_EQUAL_FATAL(molt_st_open(&f, path), MOLT_OK);
    CU_ASSERT_EQUAL((8 + f.h.header_len) % 8, 0);
    CU_ASSERT_EQUAL(f.h.data_len, sizeof a + sizeof b);
    const molt_st_tensor *t = molt_st_header_find(&f.h, specs[0].name);
    float got[6];
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->dtype == MOLT_ST_F32);
    CU_ASSERT_EQUAL(molt_st_read_f32(&f, t, got), MOLT_OK);
    CU_ASSERT(memcmp(got, a, sizeof a) == 0);
    t = molt_st_header_find(&f.h, "model.norm.weight");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(molt_st_read_f32(&f, t, got), MOLT_OK);
    CU_ASSERT(t->ndim == 1 && memcmp(got, b, sizeof b) == 0);
    molt_st_close(&f);
    /* a writer closed early leaves no file */
    CU_ASSERT_EQUAL_FATAL(molt_st_writer_open(&w, path, specs, 2), MOLT_OK);
    CU_ASSERT_EQUAL(molt_st_writer_put(&w, a), MOLT_OK);
    capture_begin();
    CU_ASSERT_EQUAL(molt_st_writer_close(&w), MOLT_ERR_INTERNAL);
    capture_end();
    CU_ASSERT_PTR_NOT_NULL(strstr(captured, "1 of 2 tensors written"));
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT(access(tmp, F_OK) != 0);
}

static void test_hf_names(void) {
    const char *cases[][3] = {
        {"base/model.layers.3.mlp.up_proj.weight", "model.layers.3.mlp.up_proj.weight",
         "base_model.model.model.layers.3.mlp.up_proj.weight"},
        {"adapters/model.layers.3.mlp.up_proj/shared/lora_A", NULL,
         "base_model.model.model.layers.3.mlp.up_proj.lora_A.weight"},
        {"adapters/model.layers.3.mlp.up_proj/expert_005/lora_B", NULL,
         "base_model.model.model.layers.3.mlp.up_proj.experts.5.lora_B.weight"},
        {"routers/model.layers.3.mlp.up_proj/weight", NULL,
         "base_model.model.model.layers.3.mlp.up_proj.router.weight"},
        {"routers/model.layers.3.mlp/bias", NULL,
         "base_model.model.model.layers.3.mlp.router.bias"},
        {"experts/model.layers.3.mlp/expert_012/gate_proj.weight", NULL,
         "base_model.model.model.layers.3.mlp.experts.12.gate_proj.weight"},
        {"projector/model.mm_projector.2.bias", NULL, "base_model.model.model.mm_projector.2.bias"},
        {"experts/model.mm_moe/expert_003/down_proj.weight", NULL,
         "base_model.model.model.mm_moe.experts.3.down_proj.weight"}};
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CU_ASSERT(molt_hf_name(cases[i][0], 1, out, sizeof out) == MOLT_OK &&
                  !strcmp(out, cases[i][2]));
        if (cases[i][1])
            CU_ASSERT(molt_hf_name(cases[i][0], 0, out, sizeof out) == MOLT_OK &&
                      !strcmp(out, cases[i][1]));
    }
    capture_begin();
    CU_ASSERT_EQUAL(molt_hf_name("adapters/x/expert_1x/lora_A", 1, out, sizeof out),
                    MOLT_ERR_INTERNAL);
    CU_ASSERT_EQUAL(molt_hf_name("optim/x/m", 1, out, sizeof out), MOLT_ERR_INTERNAL);
    CU_ASSERT_EQUAL(molt_hf_name("base/model.norm.weight", 0, out, 8), MOLT_ERR_INTERNAL);
    capture_end();
}

/* A tiny LLaMA in dir/name/ (config.json + model.safetensors, F32), all
 * weights 0.5, without tensor `skip`. */
static void write_model(const char *name, const char *skip) {
    char d[300], p[340];
    path_in_dir(d, sizeof d, name);
    mkdir(d, 0777);
    snprintf(p, sizeof p, "%s/config.json", d);
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("{\"model_type\":\"llama\",\"hidden_size\":16,\"num_hidden_layers\":1,"
          "\"num_attention_heads\":2,\"intermediate_size\":24,\"vocab_size\":260,"
          "\"tie_word_embeddings\":true}",
          f);
    fclose(f);
    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL_FATAL(
        molt_config_load_string(&c,
                                "[model]\nd_model = 16\nn_layers = 1\n"
                                "n_heads = 2\nn_kv_heads = 2\nd_ff = 24\nvocab_size = 260\n",
                                "t"),
        MOLT_OK);
    molt_model view;
    memset(&view, 0, sizeof view);
    CU_ASSERT_EQUAL_FATAL(molt_dims_from_config(&view.dims, &c), MOLT_OK);
    molt_param_desc *desc = NULL;
    int n = 0, k = 0;
    CU_ASSERT_EQUAL_FATAL(molt_model_describe_all(&view, &desc, &n), MOLT_OK);
    molt_st_spec *specs = calloc((size_t)n, sizeof *specs);
    for (int i = 0; i < n; i++)
        if (strcmp(desc[i].path + 5, skip))
            specs[k++] = (molt_st_spec){desc[i].path + 5,
                                        desc[i].cols ? 2 : 1,
                                        {(uint64_t)desc[i].rows, (uint64_t)desc[i].cols}};
    float *v = malloc(260 * 16 * sizeof *v);
    for (int i = 0; i < 260 * 16; i++)
        v[i] = 0.5f;
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    molt_st_writer w;
    CU_ASSERT_EQUAL_FATAL(molt_st_writer_open(&w, p, specs, k), MOLT_OK);
    for (int i = 0; i < k; i++)
        CU_ASSERT_EQUAL(molt_st_writer_put(&w, v), MOLT_OK);
    CU_ASSERT_EQUAL(molt_st_writer_close(&w), MOLT_OK);
    free(v), free(specs), free(desc);
}

static int import_captured(const char *src, const char *out) {
    char *argv[] = {"import", (char *)src, "--out", (char *)out, NULL};
    capture_begin();
    int rc = molt_cmd_import(4, argv, MPI_COMM_WORLD);
    capture_end();
    return rc;
}

static void test_import_command(void) {
    char src[300], out[300], p[340];
    path_in_dir(out, sizeof out, "base.h5");
    write_model("good", "");
    path_in_dir(src, sizeof src, "good");
    int rc = import_captured(src, out);
    CU_ASSERT_EQUAL(rc, MOLT_OK);
    if (rc) fprintf(stderr, "%s\n", captured);
    snprintf(p, sizeof p, "%s/base.ini", dir);
    CU_ASSERT(access(out, F_OK) == 0 && access(p, F_OK) == 0);
    remove(out), remove(p);

    write_model("missing", "model.layers.0.mlp.down_proj.weight");
    path_in_dir(src, sizeof src, "missing");
    CU_ASSERT_EQUAL(import_captured(src, out), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(captured, "missing/model.safetensors: tensor "
                                            "model.layers.0.mlp.down_proj.weight is missing "
                                            "(expected shape [16, 24])"));
    snprintf(p, sizeof p, "%s.tmp", out);
    CU_ASSERT(access(out, F_OK) != 0 && access(p, F_OK) != 0);

    /* cut the good file 10 bytes short: the last tensor runs past the end */
    char from[340], to[340];
    snprintf(from, sizeof from, "%s/good/model.safetensors", dir);
    snprintf(to, sizeof to, "%s/missing/model.safetensors", dir);
    FILE *f = fopen(from, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(to, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite(buf, 1, n - 10, f);
    fclose(f);
    CU_ASSERT_EQUAL(import_captured(src, out), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(captured, "missing/model.safetensors: tensor '"));
    CU_ASSERT_PTR_NOT_NULL(strstr(captured, "run past the data section"));
    CU_ASSERT(access(out, F_OK) != 0);
}

static int export_captured(const char *ckpt, const char *out, int merged) {
    char *argv[] = {"export", (char *)ckpt, "--out", (char *)out, "--merged", NULL};
    capture_begin();
    int rc = molt_cmd_export(merged ? 5 : 4, argv, MPI_COMM_WORLD);
    capture_end();
    return rc;
}

/* A weights file of the model `ini` describes (random init), at dir/name. */
static void write_weights(const char *ini, const char *name, char *path, size_t n) {
    molt_config c;
    molt_model m;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL_FATAL(molt_config_load_string(&c, ini, "t"), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_model_create(&m, &c, 1, 2, NULL), MOLT_OK);
    char *text = molt_config_to_ini(&c);
    path_in_dir(path, n, name);
    CU_ASSERT_EQUAL(molt_weights_save(path, &m, text, 3), MOLT_OK);
    free(text);
    molt_model_free(&m);
}

static int count_tensors(const char *path) {
    molt_st_file f;
    if (molt_st_open(&f, path) != MOLT_OK) return -1;
    int n = f.h.n;
    molt_st_close(&f);
    return n;
}

static void test_export_command(void) {
    const char *model = "[model]\nmode = peft\nd_model = 16\nn_layers = 1\nn_heads = 2\n"
                        "n_kv_heads = 2\nd_ff = 24\nvocab_size = 260\n";
    char ini[512], ckpt[300], out[300], p[340];
    /* plugin MoE: 2 experts x 2 (A, B) + router on up_proj, shared LoRA on q, 3 norms */
    snprintf(ini, sizeof ini,
             "%s[lora]\ntargets = q_proj\ntrain_norms = true\n[moe]\n"
             "placement = plugin\nnum_experts = 2\ntargets = up_proj\n",
             model);
    write_weights(ini, "moe.h5", ckpt, sizeof ckpt);
    path_in_dir(out, sizeof out, "x_moe");
    int rc = export_captured(ckpt, out, 0);
    CU_ASSERT_EQUAL(rc, MOLT_OK);
    if (rc) fprintf(stderr, "%s\n", captured);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", out);
    CU_ASSERT_EQUAL(count_tensors(p), 4 + 1 + 2 + 3);
    snprintf(p, sizeof p, "%s/molt_moe.json", out);
    CU_ASSERT(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    CU_ASSERT(access(p, F_OK) != 0); /* peft: the base is not exported */
    path_in_dir(out, sizeof out, "x_refused");
    CU_ASSERT_EQUAL(export_captured(ckpt, out, 1), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(captured, "--merged needs a run without experts"));

    /* LoRA on q and down: merged into the 11 base tensors */
    snprintf(ini, sizeof ini, "%s[lora]\ntargets = q_proj,down_proj\n", model);
    write_weights(ini, "lora.h5", ckpt, sizeof ckpt);
    path_in_dir(out, sizeof out, "x_merged");
    rc = export_captured(ckpt, out, 1);
    CU_ASSERT_EQUAL(rc, MOLT_OK);
    if (rc) fprintf(stderr, "%s\n", captured);
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    CU_ASSERT_EQUAL(count_tensors(p), 11);
    snprintf(p, sizeof p, "%s/config.json", out);
    CU_ASSERT(access(p, F_OK) == 0);

    /* not a weights file */
    path_in_dir(p, sizeof p, "good/config.json");
    CU_ASSERT_EQUAL(export_captured(p, out, 0), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(captured, "not a readable HDF5 file"));
}

/* Inputs the fuzzers found (none so far) and hand-made near misses,
 * replayed through the reader exactly as fuzz_safetensors.c drives it. */
/* Inputs the fuzzer once crashed on: each must now end in its exact code,
 * with a message naming the file for the refused ones. */
static void test_fuzz_regressions(void) {
    static const struct {
        const char *bytes;
        size_t n;
        int parse_rc; /* the header length is sound in each: the parse decides */
        const char *says; /* in the message of a refused one */
    } cases[] = {
        {"\x02\0\0\0\0\0\0\0{}", 10, MOLT_OK, NULL}, /* no tensors: an empty file */
        {"\x04\0\0\0\0\0\0\0{\"\\\"", 12, MOLT_ERR_INPUT, "fuzz"}, /* escape at the very end */
        {"\x05\0\0\0\0\0\0\0{\"a\":", 13, MOLT_ERR_INPUT, "fuzz"},
        {"\x0c\0\0\0\0\0\0\0{\"\\u0000\":1}", 20, MOLT_ERR_INPUT, "fuzz"}, /* NUL name */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned char *d = (const unsigned char *)cases[i].bytes;
        uint64_t n = 0;
        capture_begin();
        int rc = molt_st_header_length(d, cases[i].n, "fuzz", &n);
        capture_end();
        CU_ASSERT_EQUAL(rc, MOLT_OK);
        CU_ASSERT_EQUAL(n, cases[i].n - 8);
        if (rc != MOLT_OK) continue;
        char *text = malloc(n ? n : 1);
        memcpy(text, d + 8, n);
        molt_st_header h;
        capture_begin();
        rc = molt_st_header_parse(text, n, cases[i].n - 8 - n, "fuzz", &h);
        capture_end();
        if (rc != cases[i].parse_rc) printf("\nfuzz case %zu: rc %d: %s", i, rc, captured);
        CU_ASSERT_EQUAL(rc, cases[i].parse_rc);
        if (cases[i].says) CU_ASSERT_PTR_NOT_NULL(strstr(captured, cases[i].says));
        molt_st_header_free(&h);
        free(text);
    }
}

static int run(int argc, char **argv) {
    molt_test_case cases[] = {
        {"malformed headers: exit code, file and problem named", test_bad_headers},
        {"edge headers that must pass", test_good_headers},
        {"header length bounds", test_header_length},
        {"F16 and BF16 conversion, all values", test_conversion},
        {"writer -> reader round trip", test_round_trip},
        {"Hugging Face / PEFT names", test_hf_names},
        {"molt import: missing tensor, truncated file", test_import_command},
        {"molt export: MoE, merged, refused", test_export_command},
        {"fuzz regressions", test_fuzz_regressions},
        {NULL, NULL}};
    return molt_run_suite(argc, argv, "safetensors", cases);
}

int main(int argc, char **argv) {
    return molt_run_in_scratch(argc, argv, "safetensors", dir, sizeof dir, run);
}
