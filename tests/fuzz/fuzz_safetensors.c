/* fuzz_safetensors.c — libFuzzer target for the safetensors reader
 * (include/molt/safetensors.h). One input is one whole file in memory: the
 * 8-byte length checks, then the header parser on an exact-size copy of the
 * header (so ASan sees any read past it), then every float tensor converted
 * from the data section. On success the header's promises are checked and a
 * broken one aborts: every tensor inside the data section, numel x dtype size
 * == its byte span, non-empty tensors disjoint in begin order, every name
 * found by molt_st_header_find. Errors print to stderr (run.sh passes
 * -close_fd_mask=2; libFuzzer keeps its own and the sanitizers' output). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"
#include "molt/safetensors.h"

static void check(int ok) {
    if (!ok) abort();
}

static void check_header(const molt_st_header *h, const uint8_t *data) {
    const molt_st_tensor *prev = NULL;
    for (int i = 0; i < h->n; i++) {
        const molt_st_tensor *t = &h->tensors[i];
        check(t->begin <= t->end && t->end <= h->data_len);
        check(t->numel * molt_st_dtype_size(t->dtype) == t->end - t->begin);
        check(molt_st_header_find(h, t->name) == t);
        if (t->begin < t->end) {
            check(!prev || prev->end <= t->begin);
            prev = t;
        }
        if (t->dtype < MOLT_ST_NFLOAT && t->numel) {
            float *out = malloc(t->numel * sizeof *out);
            check(out != NULL);
            molt_st_to_f32(t->dtype, data + t->begin, t->numel, out);
            free(out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned char prefix[8] = {0};
    uint64_t n = 0;
    memcpy(prefix, data, size < 8 ? size : 8);
    if (molt_st_header_length(prefix, size, "fuzz.safetensors", &n) != MOLT_OK) return 0;
    char *text = malloc(n);
    check(text != NULL);
    memcpy(text, data + 8, n);
    molt_st_header h;
    if (molt_st_header_parse(text, n, size - 8 - n, "fuzz.safetensors", &h) == MOLT_OK)
        check_header(&h, data + 8 + n);
    molt_st_header_free(&h);
    free(text);
    return 0;
}
