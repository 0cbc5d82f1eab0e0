/* test_mmmb.c — Parrot's feature data: mmmb_lite (include/molt/mmmb.h: the
 * language mix, the lexicon, training and evaluation items, row layout and
 * features), data.source = mmmb_lite through molt_data_open/fill, and
 * data.source = features (src/data/features.h: an HDF5 /features file plus a
 * JSONL file of answer and multiple-choice lines, and its open-time errors). */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/features.h"
#include "molt/config.h"
#include "molt/data.h"
#include "molt/err.h"
#include "molt/mmmb.h"
#include "testutil.h"

static char dir[64];

enum { NFT = 8, FDIM = 5, TMAX = 256 };

/* mmmb_lite at test size: 8 feature tokens of width 5 (room for every English
 * caption), all 12 classes, noise 0.5. */
static molt_config mmmb_config(void) {
    molt_config c;
    molt_config_defaults(&c);
    c.model.projector = MOLT_PROJECTOR_MLP2X_GELU;
    c.model.feat_tokens = NFT;
    c.model.feat_dim = FDIM;
    c.train.seed = 7;
    c.data.source = MOLT_DATA_MMMB;
    c.data.mmmb_classes = MOLT_MMMB_MAX_CLASSES;
    c.data.mmmb_noise = 0.5;
    c.data.mmmb_caption = 0;
    c.data.mmmb_seed = 2024;
    return c;
}

/* Strict UTF-8: no stray continuation bytes, no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
static int valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++, n, cp;
        if (c < 0x80) continue;
        if (c >= 0xc2 && c <= 0xdf) n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) n = 3, cp = c & 0x07;
        else return 0;
        for (unsigned k = 0; k < n; k++, p++) {
            if ((*p & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (*p & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

static void test_utf8_validator(void) {
    CU_ASSERT(valid_utf8("cat"));
    CU_ASSERT(valid_utf8("\xe7\x8c\xab"));     /* 猫 */
    CU_ASSERT(valid_utf8("\xf0\x9f\x90\x88")); /* U+1F408 */
    CU_ASSERT(!valid_utf8("\x80"));
    CU_ASSERT(!valid_utf8("\xc3"));
    CU_ASSERT(!valid_utf8("\xc0\xaf"));         /* overlong '/' */
    CU_ASSERT(!valid_utf8("\xe0\x80\xaf"));     /* overlong */
    CU_ASSERT(!valid_utf8("\xed\xa0\x80"));     /* surrogate */
    CU_ASSERT(!valid_utf8("\xf4\x90\x80\x80")); /* above U+10FFFF */
}

/* ---- the language mix ------------------------------------------------ */

static void test_parse_mix(void) {
    double cum[MOLT_MMMB_LANGS];
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_parse_mix("en:2,zh:1,ru:1", "k", cum), MOLT_OK);
    const double want[MOLT_MMMB_LANGS] = {0.5, 0.75, 0.75, 0.75, 0.75, 1.0};
    for (int l = 0; l < MOLT_MMMB_LANGS; l++)
        CU_ASSERT_DOUBLE_EQUAL(cum[l], want[l], 1e-12);
    /* Order of entries does not matter; weights need not sum to 1. */
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_parse_mix("ar:3,pt:1", "k", cum), MOLT_OK);
    const double want2[MOLT_MMMB_LANGS] = {0, 0, 0.25, 1.0, 1.0, 1.0};
    for (int l = 0; l < MOLT_MMMB_LANGS; l++)
        CU_ASSERT_DOUBLE_EQUAL(cum[l], want2[l], 1e-12);
    /* The default, English-heavy mix. */
    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_parse_mix(c.data.lang_mix, "data.lang_mix", cum), MOLT_OK);
    for (int l = 0; l < MOLT_MMMB_LANGS; l++)
        CU_ASSERT_DOUBLE_EQUAL(cum[l], 0.8 + 0.04 * l, 1e-12);

    const char *bad[] = {
        "xx:1",          /* unknown language */
        "en:1,EN:1",     /* case matters: EN is not a language */
        "en:1,zh:1,en:2", /* a language twice */
        "en:-0.5,zh:1",  /* negative weight */
        "en:abc",        /* not a number */
        "en:1x",         /* trailing junk */
        "en:1,",         /* an empty entry at the end */
        ",en:1",         /* and at the start */
        "en:",           /* empty weight */
        "en:nan",        /* not a number >= 0 */
        "en:0,zh:0",     /* all zero */
        "",              /* nothing */
        "en1",           /* missing colon */
        "en:1,zh",       /* missing colon in the second entry */
        "en:1,,zh:1",    /* empty entry */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = molt_mmmb_parse_mix(bad[i], "data.lang_mix", cum);
        if (rc != MOLT_ERR_INPUT) fprintf(stderr, "lang_mix '%s' gave %d\n", bad[i], rc);
        CU_ASSERT_EQUAL(rc, MOLT_ERR_INPUT);
    }
}

/* ---- the lexicon ----------------------------------------------------- */

static void test_lexicon(void) {
    CU_ASSERT_STRING_EQUAL(molt_mmmb_lang_names[0], "en");
    for (int l = 0; l < MOLT_MMMB_LANGS; l++) {
        CU_ASSERT_EQUAL(strlen(molt_mmmb_lang_names[l]), 2);
        for (int k = 0; k < MOLT_MMMB_MAX_CLASSES; k++) {
            const char *n = molt_mmmb_class_name(l, k);
            CU_ASSERT_PTR_NOT_NULL_FATAL(n);
            CU_ASSERT(n[0] != '\0');
            CU_ASSERT(valid_utf8(n));
            for (int j = 0; j < k; j++)
                CU_ASSERT(strcmp(n, molt_mmmb_class_name(l, j)) != 0);
        }
    }
}

/* ---- items ----------------------------------------------------------- */

static void test_train_items(void) {
    molt_config c = mmmb_config();
    molt_mmmb mm;
    snprintf(c.data.lang_mix, sizeof c.data.lang_mix, "en:1");
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    int english = 0;
    for (uint64_t g = 0; g < 2000; g++)
        english += molt_mmmb_train_item(&mm, g).lang == 0;
    CU_ASSERT_EQUAL(english, 2000);
    molt_mmmb_free(&mm);

    /* The default mix: 0.8 English, 0.04 each other language. */
    c = mmmb_config();
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    enum { N = 20000 };
    int per_lang[MOLT_MMMB_LANGS] = {0}, per_cls[MOLT_MMMB_MAX_CLASSES] = {0}, per_tmpl[2] = {0};
    for (uint64_t g = 0; g < N; g++) {
        molt_mmmb_item it = molt_mmmb_train_item(&mm, g);
        CU_ASSERT_FATAL(it.lang >= 0 && it.lang < MOLT_MMMB_LANGS);
        CU_ASSERT_FATAL(it.cls >= 0 && it.cls < mm.K);
        CU_ASSERT_FATAL(it.tmpl == 0 || it.tmpl == 1);
        per_lang[it.lang]++, per_cls[it.cls]++, per_tmpl[it.tmpl]++;
        /* A pure function of g. */
        molt_mmmb_item again = molt_mmmb_train_item(&mm, g);
        CU_ASSERT(again.lang == it.lang && again.cls == it.cls && again.tmpl == it.tmpl);
    }
    CU_ASSERT_DOUBLE_EQUAL((double)per_lang[0] / N, 0.8, 0.02);
    for (int l = 1; l < MOLT_MMMB_LANGS; l++)
        CU_ASSERT_DOUBLE_EQUAL((double)per_lang[l] / N, 0.04, 0.01);
    for (int k = 0; k < mm.K; k++)
        CU_ASSERT(per_cls[k] > 0);
    CU_ASSERT(per_tmpl[0] > 0 && per_tmpl[1] > 0);
    molt_mmmb_free(&mm);

    /* A language of weight 0 is never drawn: "zh:1" gives only Chinese. */
    c = mmmb_config();
    snprintf(c.data.lang_mix, sizeof c.data.lang_mix, "en:0,zh:1");
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    int zh = 0;
    for (uint64_t g = 0; g < 2000; g++)
        zh += molt_mmmb_train_item(&mm, g).lang == 1;
    CU_ASSERT_EQUAL(zh, 2000);
    molt_mmmb_free(&mm);
}

static int items_equal(const molt_mmmb_item *a, const molt_mmmb_item *b) {
    int same = a->lang == b->lang && a->cls == b->cls && a->tmpl == b->tmpl && a->label == b->label;
    for (int j = 0; j < MOLT_MMMB_CHOICES; j++)
        same &= a->choice[j] == b->choice[j];
    return same;
}

static void test_eval_items(void) {
    molt_config c = mmmb_config();
    molt_mmmb mm, other_train, other_bench;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    c.train.seed = 12345; /* another run of a sweep */
    snprintf(c.data.lang_mix, sizeof c.data.lang_mix, "zh:1");
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&other_train, &c), MOLT_OK);
    c.data.mmmb_seed = 2025;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&other_bench, &c), MOLT_OK);
    int differ = 0, labels[MOLT_MMMB_CHOICES] = {0}, classes[MOLT_MMMB_MAX_CLASSES] = {0};
    for (int l = 0; l < MOLT_MMMB_LANGS; l++)
        for (uint64_t i = 0; i < 200; i++) {
            molt_mmmb_item it = molt_mmmb_eval_item(&mm, l, i);
            CU_ASSERT_EQUAL(it.lang, l);
            CU_ASSERT_FATAL(it.cls >= 0 && it.cls < mm.K);
            CU_ASSERT(it.tmpl == 0 || it.tmpl == 1);
            CU_ASSERT_FATAL(it.label >= 0 && it.label < MOLT_MMMB_CHOICES);
            CU_ASSERT_EQUAL(it.choice[it.label], it.cls);
            for (int j = 0; j < MOLT_MMMB_CHOICES; j++) {
                CU_ASSERT(it.choice[j] >= 0 && it.choice[j] < mm.K);
                for (int q = 0; q < j; q++)
                    CU_ASSERT(it.choice[j] != it.choice[q]);
            }
            labels[it.label]++, classes[it.cls]++;
            molt_mmmb_item again = molt_mmmb_eval_item(&mm, l, i);
            CU_ASSERT(items_equal(&it, &again));
            molt_mmmb_item t = molt_mmmb_eval_item(&other_train, l, i);
            CU_ASSERT(items_equal(&it, &t));
            molt_mmmb_item b = molt_mmmb_eval_item(&other_bench, l, i);
            differ += !items_equal(&it, &b);
        }
    CU_ASSERT(differ > 600); /* of 1200: most items change with data.mmmb_seed */
    for (int j = 0; j < MOLT_MMMB_CHOICES; j++)
        CU_ASSERT(labels[j] > 0);
    for (int k = 0; k < mm.K; k++)
        CU_ASSERT(classes[k] > 0);
    /* The prototypes follow data.mmmb_seed only, as do evaluation features. */
    const size_t per = (size_t)mm.K * NFT * FDIM * sizeof(float);
    CU_ASSERT(!memcmp(mm.proto, other_train.proto, per));
    CU_ASSERT(memcmp(mm.proto, other_bench.proto, per) != 0);
    molt_mmmb_item it = molt_mmmb_eval_item(&mm, 2, 5);
    int32_t in[TMAX], tg[TMAX];
    float f1[NFT * FDIM], f2[NFT * FDIM];
    int p1, p2;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_EVAL, 17, it.cls, 0, TMAX, in, tg,
                                        f1, &p1), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&other_train, &it, MOLT_SPLIT_EVAL, 17, it.cls, 0, TMAX,
                                        in, tg, f2, &p2), MOLT_OK);
    CU_ASSERT(!memcmp(f1, f2, sizeof f1));
    CU_ASSERT_EQUAL(p1, p2);
    molt_mmmb_free(&mm);
    molt_mmmb_free(&other_train);
    molt_mmmb_free(&other_bench);
}

static void test_init_errors(void) {
    molt_config c = mmmb_config();
    molt_mmmb mm;
    snprintf(c.data.lang_mix, sizeof c.data.lang_mix, "en:1,xx:1");
    CU_ASSERT_EQUAL(molt_mmmb_init(&mm, &c), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(mm.proto);
    c = mmmb_config();
    c.data.mmmb_classes = MOLT_MMMB_MAX_CLASSES + 1;
    CU_ASSERT_EQUAL(molt_mmmb_init(&mm, &c), MOLT_ERR_INPUT);
    c.data.mmmb_classes = 1;
    CU_ASSERT_EQUAL(molt_mmmb_init(&mm, &c), MOLT_ERR_INPUT);
}

/* ---- rows ------------------------------------------------------------ */

/* The row of `it` checked position by position: <bos>, the span, a prompt of
 * UTF-8 bytes, the answer's class name in the item's language, <eos> when
 * with_eos, <pad> after; targets only on the answer (and <eos>). Returns the
 * prompt's first byte position (1 + n_ft) and length via *prompt_n. */
static void check_row(const molt_mmmb *mm, const molt_mmmb_item *it, int answer, int with_eos,
                      const int32_t *in, const int32_t *tg, int T, int plen, int *prompt_n) {
    CU_ASSERT_EQUAL_FATAL(in[0], MOLT_TOK_BOS);
    const char *en = molt_mmmb_class_name(0, it->cls);
    for (int j = 0; j < mm->n_ft; j++) {
        int32_t want = MOLT_TOK_PAD;
        if (mm->caption) want = j < (int)strlen(en) ? (unsigned char)en[j] : ' ';
        CU_ASSERT_EQUAL(in[1 + j], want);
    }
    int p0 = 1 + mm->n_ft, n = plen - p0;
    CU_ASSERT_FATAL(n > 0);
    char prompt[TMAX];
    for (int t = p0; t < plen; t++) {
        CU_ASSERT_FATAL(in[t] > 0 && in[t] < 256);
        prompt[t - p0] = (char)in[t];
    }
    prompt[n] = '\0';
    CU_ASSERT(valid_utf8(prompt));
    *prompt_n = n;
    const char *name = molt_mmmb_class_name(it->lang, answer);
    int len = plen + (int)strlen(name) + with_eos; /* tokens in the row */
    CU_ASSERT_FATAL(len <= T + 1);
    for (int t = plen; t < T; t++) {
        int32_t want = MOLT_TOK_PAD;
        if (t - plen < (int)strlen(name)) want = (unsigned char)name[t - plen];
        else if (with_eos && t == len - 1) want = MOLT_TOK_EOS;
        CU_ASSERT_EQUAL(in[t], want);
    }
    for (int t = 0; t < T; t++) {
        int32_t want = MOLT_IGNORE;
        if (t >= plen - 1 && t + 1 < len) {
            int k = t + 1 - plen;
            want = k < (int)strlen(name) ? (unsigned char)name[k] : MOLT_TOK_EOS;
        }
        CU_ASSERT_EQUAL(tg[t], want);
    }
    CU_ASSERT_EQUAL(tg[plen - 2], MOLT_IGNORE);
    CU_ASSERT_EQUAL(tg[plen - 1], (unsigned char)name[0]);
    if (with_eos) CU_ASSERT_EQUAL(tg[len - 2], MOLT_TOK_EOS);
}

static void test_rows(void) {
    enum { T = 80 };
    for (int caption = 0; caption <= 1; caption++) {
        molt_config c = mmmb_config();
        c.data.mmmb_caption = caption;
        molt_mmmb mm;
        CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
        CU_ASSERT_FATAL(molt_mmmb_longest(&mm) <= T);
        /* Every language, template, class and answer; the prompt depends on
         * (language, template) only, and the two templates differ. */
        for (int l = 0; l < MOLT_MMMB_LANGS; l++) {
            int tmpl_len[2] = {-1, -1};
            int32_t tmpl_tok[2][T];
            for (uint64_t i = 0; i < 60; i++) {
                molt_mmmb_item it = molt_mmmb_eval_item(&mm, l, i);
                for (int j = 0; j < MOLT_MMMB_CHOICES; j++) {
                    int32_t in[T], tg[T];
                    float feat[NFT * FDIM];
                    int plen = -1, n = 0, ans = it.choice[j], eos = j == it.label;
                    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_EVAL, i, ans, eos, T,
                                                        in, tg, feat, &plen), MOLT_OK);
                    check_row(&mm, &it, ans, eos, in, tg, T, plen, &n);
                    if (tmpl_len[it.tmpl] < 0) {
                        tmpl_len[it.tmpl] = n;
                        memcpy(tmpl_tok[it.tmpl], in + 1 + NFT, (size_t)n * sizeof(int32_t));
                    } else {
                        CU_ASSERT_EQUAL(n, tmpl_len[it.tmpl]);
                        CU_ASSERT(!memcmp(tmpl_tok[it.tmpl], in + 1 + NFT,
                                          (size_t)n * sizeof(int32_t)));
                    }
                }
            }
            CU_ASSERT_FATAL(tmpl_len[0] > 0 && tmpl_len[1] > 0);
            CU_ASSERT(tmpl_len[0] != tmpl_len[1] ||
                      memcmp(tmpl_tok[0], tmpl_tok[1], (size_t)tmpl_len[0] * sizeof(int32_t)));
        }
        /* Training rows: the item's own class, with <eos>. */
        for (uint64_t g = 0; g < 200; g++) {
            molt_mmmb_item it = molt_mmmb_train_item(&mm, g);
            int32_t in[T], tg[T];
            int plen, n;
            CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, g, it.cls, 1, T, in, tg,
                                                NULL, &plen), MOLT_OK);
            check_row(&mm, &it, it.cls, 1, in, tg, T, plen, &n);
        }
        molt_mmmb_free(&mm);
    }
}

/* The English caption must fit the span: "flower" does not fit 4 tokens. */
static void test_caption_fit(void) {
    molt_config c = mmmb_config();
    c.data.mmmb_caption = 1;
    c.model.feat_tokens = 4;
    molt_mmmb mm;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    int32_t in[TMAX], tg[TMAX];
    int plen, seen_fit = 0, seen_long = 0;
    for (int k = 0; k < mm.K; k++) {
        molt_mmmb_item it = {.lang = 0, .cls = k, .tmpl = 0, .label = -1};
        int fits = strlen(molt_mmmb_class_name(0, k)) <= 4;
        int rc = molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, 0, k, 1, TMAX, in, tg, NULL, &plen);
        CU_ASSERT_EQUAL(rc, fits ? MOLT_OK : MOLT_ERR_INPUT);
        seen_fit += fits, seen_long += !fits;
    }
    CU_ASSERT(seen_fit > 0 && seen_long > 0);
    molt_mmmb_free(&mm);
}

static void test_row_features(void) {
    enum { T = 80, PER = NFT * FDIM };
    molt_config c = mmmb_config();
    c.data.mmmb_noise = 0;
    molt_mmmb mm;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    int32_t in[T], tg[T];
    float fa[PER], fb[PER], fc[PER];
    int plen;
    /* Noise 0: two samples of class 3 (other languages, templates, splits)
     * both carry the class-3 prototype; class 4 another one. */
    molt_mmmb_item a = {.lang = 0, .cls = 3, .tmpl = 0, .label = -1};
    molt_mmmb_item b = {.lang = 5, .cls = 3, .tmpl = 1, .label = -1};
    molt_mmmb_item o = {.lang = 0, .cls = 4, .tmpl = 0, .label = -1};
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &a, MOLT_SPLIT_TRAIN, 1, 3, 1, T, in, tg, fa, &plen),
                          MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &b, MOLT_SPLIT_EVAL, 99, 3, 0, T, in, tg, fb, &plen),
                          MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &o, MOLT_SPLIT_TRAIN, 1, 4, 1, T, in, tg, fc, &plen),
                          MOLT_OK);
    CU_ASSERT(!memcmp(fa, fb, sizeof fa));
    CU_ASSERT(!memcmp(fa, mm.proto + 3 * PER, sizeof fa));
    CU_ASSERT(!memcmp(fc, mm.proto + 4 * PER, sizeof fc));
    CU_ASSERT(memcmp(fa, fc, sizeof fa) != 0);
    /* The prototype is N(0,1): entries are spread, not constant. */
    double m = 0, v = 0;
    for (int k = 0; k < mm.K * PER; k++)
        m += mm.proto[k];
    m /= mm.K * PER;
    for (int k = 0; k < mm.K * PER; k++)
        v += (mm.proto[k] - m) * (mm.proto[k] - m);
    v /= mm.K * PER;
    CU_ASSERT(fabs(m) < 0.2 && v > 0.7 && v < 1.3);
    molt_mmmb_free(&mm);

    /* Noise 0.5: samples differ from each other and from the prototype,
     * by about the noise; the same (split, g) repeats exactly. */
    c.data.mmmb_noise = 0.5;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &a, MOLT_SPLIT_TRAIN, 1, 3, 1, T, in, tg, fa, &plen),
                          MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &a, MOLT_SPLIT_TRAIN, 2, 3, 1, T, in, tg, fb, &plen),
                          MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &a, MOLT_SPLIT_TRAIN, 1, 3, 1, T, in, tg, fc, &plen),
                          MOLT_OK);
    CU_ASSERT(memcmp(fa, fb, sizeof fa) != 0);
    CU_ASSERT(!memcmp(fa, fc, sizeof fa));
    double d2 = 0;
    for (int k = 0; k < PER; k++) {
        double d = fa[k] - mm.proto[3 * PER + k];
        d2 += d * d;
    }
    CU_ASSERT(sqrt(d2 / PER) > 0.25 && sqrt(d2 / PER) < 1.0);
    /* The train and eval splits draw different noise for the same g. */
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &a, MOLT_SPLIT_EVAL, 1, 3, 1, T, in, tg, fc, &plen),
                          MOLT_OK);
    CU_ASSERT(memcmp(fa, fc, sizeof fa) != 0);
    molt_mmmb_free(&mm);
}

static void test_row_too_short(void) {
    molt_config c = mmmb_config();
    molt_mmmb mm;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    int32_t in[TMAX], tg[TMAX];
    float feat[NFT * FDIM];
    int plen;
    molt_mmmb_item it = {.lang = 5, .cls = 1, .tmpl = 1, .label = -1};
    /* Shorter than the span, than the prompt, than the answer. */
    const int Ts[] = {1, NFT, NFT + 3, NFT + 20};
    for (size_t k = 0; k < sizeof Ts / sizeof Ts[0]; k++)
        CU_ASSERT_EQUAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, 0, 1, 1, Ts[k], in, tg, feat,
                                      &plen), MOLT_ERR_INPUT);
    /* The boundary: a row of len tokens fits T = len - 1 (its last token,
     * <eos>, is only a target), not T = len - 2. */
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, 0, 1, 1, TMAX, in, tg, feat,
                                        &plen), MOLT_OK);
    int len = plen + (int)strlen(molt_mmmb_class_name(5, 1)) + 1;
    CU_ASSERT_EQUAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, 0, 1, 1, len - 1, in, tg, feat,
                                  &plen), MOLT_OK);
    CU_ASSERT_EQUAL(tg[len - 2], MOLT_TOK_EOS);
    CU_ASSERT_EQUAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, 0, 1, 1, len - 2, in, tg, feat,
                                  &plen), MOLT_ERR_INPUT);
    /* Without <eos> one position less is needed. */
    CU_ASSERT_EQUAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, 0, 1, 0, len - 2, in, tg, feat,
                                  &plen), MOLT_OK);
    molt_mmmb_free(&mm);
}

/* ---- data.source = mmmb_lite through molt_data ------------------------ */

static int fill(const molt_config *c, uint64_t first, int n, molt_batch *b) {
    molt_data *d = NULL;
    memset(b, 0, sizeof *b);
    int rc = molt_data_open(&d, c, MOLT_SPLIT_TRAIN);
    if (rc == MOLT_OK) rc = molt_batch_alloc(b, n, c->train.seq_len);
    if (rc == MOLT_OK) rc = molt_data_fill(d, first, b);
    molt_data_close(d);
    return rc;
}

static int batches_equal(const molt_batch *a, int off, const molt_batch *b) {
    size_t T = (size_t)b->seq_len, n = (size_t)b->n_seq, F = (size_t)b->n_ft * b->feat_dim;
    return a->seq_len == b->seq_len && a->n_ft == b->n_ft && a->feat_dim == b->feat_dim &&
           !memcmp(a->inputs + off * T, b->inputs, n * T * sizeof(int32_t)) &&
           !memcmp(a->targets + off * T, b->targets, n * T * sizeof(int32_t)) &&
           !memcmp(a->task + off, b->task, n * sizeof(int)) &&
           (!F || (!memcmp(a->feat + off * F, b->feat, n * F * sizeof(float)) &&
                   !memcmp(a->plen + off, b->plen, n * sizeof(int))));
}

static void test_batch_features(void) {
    molt_batch b;
    CU_ASSERT_EQUAL_FATAL(molt_batch_alloc(&b, 3, 10), MOLT_OK);
    CU_ASSERT_PTR_NULL(b.feat);
    CU_ASSERT_EQUAL(b.n_ft, 0);
    CU_ASSERT_EQUAL_FATAL(molt_batch_features(&b, 4, 2), MOLT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.feat);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.plen);
    CU_ASSERT(b.n_ft == 4 && b.feat_dim == 2);
    b.feat[3 * 4 * 2 - 1] = 1.0f, b.plen[2] = 1; /* the whole extent is there */
    float *kept = b.feat;
    CU_ASSERT_EQUAL(molt_batch_features(&b, 4, 2), MOLT_OK);
    CU_ASSERT_PTR_EQUAL(b.feat, kept);
    CU_ASSERT_EQUAL(molt_batch_features(&b, 5, 3), MOLT_OK);
    CU_ASSERT(b.n_ft == 5 && b.feat_dim == 3);
    b.feat[3 * 5 * 3 - 1] = 1.0f;
    molt_batch_free(&b);
    CU_ASSERT_PTR_NULL(b.feat);
    CU_ASSERT_PTR_NULL(b.plen);
}

static void test_data_mmmb(void) {
    molt_config c = mmmb_config();
    molt_mmmb mm;
    CU_ASSERT_EQUAL_FATAL(molt_mmmb_init(&mm, &c), MOLT_OK);
    c.train.seq_len = molt_mmmb_longest(&mm);
    const int T = c.train.seq_len, PER = NFT * FDIM;
    enum { N = 40 };
    molt_batch b, again, part;
    CU_ASSERT_EQUAL_FATAL(fill(&c, 100, N, &b), MOLT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.feat);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.plen);
    CU_ASSERT(b.n_ft == NFT && b.feat_dim == FDIM);
    int langs = 0;
    for (int i = 0; i < N; i++) {
        uint64_t g = 100 + (uint64_t)i;
        molt_mmmb_item it = molt_mmmb_train_item(&mm, g);
        CU_ASSERT_EQUAL(b.task[i], it.lang);
        langs |= 1 << it.lang;
        int32_t in[TMAX], tg[TMAX];
        float feat[NFT * FDIM];
        int plen = -1;
        CU_ASSERT_EQUAL_FATAL(molt_mmmb_row(&mm, &it, MOLT_SPLIT_TRAIN, g, it.cls, 1, T, in, tg,
                                            feat, &plen), MOLT_OK);
        CU_ASSERT_EQUAL(b.plen[i], plen);
        CU_ASSERT(plen > 1 + NFT && plen < T);
        CU_ASSERT(!memcmp(b.inputs + i * T, in, (size_t)T * sizeof(int32_t)));
        CU_ASSERT(!memcmp(b.targets + i * T, tg, (size_t)T * sizeof(int32_t)));
        CU_ASSERT(!memcmp(b.feat + i * PER, feat, (size_t)PER * sizeof(float)));
    }
    CU_ASSERT(langs & 1);
    /* Deterministic, and independent of the batch split. */
    CU_ASSERT_EQUAL_FATAL(fill(&c, 100, N, &again), MOLT_OK);
    CU_ASSERT(batches_equal(&b, 0, &again));
    CU_ASSERT_EQUAL_FATAL(fill(&c, 113, 5, &part), MOLT_OK);
    CU_ASSERT(batches_equal(&b, 13, &part));
    molt_batch_free(&again);
    molt_batch_free(&part);
    /* Another train.seed gives other samples. */
    c.train.seed = 8;
    CU_ASSERT_EQUAL_FATAL(fill(&c, 100, N, &again), MOLT_OK);
    CU_ASSERT(!batches_equal(&b, 0, &again));
    molt_batch_free(&again);
    molt_batch_free(&b);

    /* Caption mode: no features; the span holds text. */
    c.train.seed = 7;
    c.data.mmmb_caption = 1;
    CU_ASSERT_EQUAL_FATAL(fill(&c, 0, 8, &b), MOLT_OK);
    CU_ASSERT_PTR_NULL(b.feat);
    for (int i = 0; i < 8; i++) {
        molt_mmmb_item it = molt_mmmb_train_item(&mm, (uint64_t)i);
        CU_ASSERT_EQUAL(b.inputs[i * T + 1], (unsigned char)molt_mmmb_class_name(0, it.cls)[0]);
    }
    molt_batch_free(&b);

    /* Open-time errors: seq_len below the longest row, a bad mix, bad K. */
    c = mmmb_config();
    c.train.seq_len = 1 + NFT + 4;
    molt_data *d = (molt_data *)&c;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(d);
    c.train.seq_len = T;
    snprintf(c.data.lang_mix, sizeof c.data.lang_mix, "en:1,en:1");
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    c = mmmb_config();
    c.train.seq_len = T;
    c.data.mmmb_classes = 13;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    c.data.mmmb_classes = MOLT_MMMB_CHOICES - 1; /* too few for the distractors */
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    /* A batch of another seq_len. */
    c.data.mmmb_classes = MOLT_MMMB_MAX_CLASSES;
    CU_ASSERT_EQUAL_FATAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_batch_alloc(&b, 2, T + 1), MOLT_OK);
    CU_ASSERT_EQUAL(molt_data_fill(d, 0, &b), MOLT_ERR_INPUT);
    molt_batch_free(&b);
    molt_data_close(d);
    molt_mmmb_free(&mm);
}

/* ---- data.source = features ------------------------------------------ */

enum { FS_N = 5, FS_FT = 3, FS_DIM = 4, FS_T = 48 };

static void path_in_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static float feature_value(int s, int t, int k) {
    return (float)(100 * s + 10 * t + k) + 0.25f;
}

/* /features (or `name`) as float32 [n, ft, dim] (rank 3) or [n, ft * dim]. */
static void write_h5(const char *file, const char *name, int n, int ft, int dim, int rank) {
    char path[128];
    path_in_dir(path, sizeof path, file);
    float *v = malloc(sizeof(float) * ((size_t)n * ft * dim + 1));
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    for (int s = 0; s < n; s++)
        for (int t = 0; t < ft; t++)
            for (int k = 0; k < dim; k++)
                v[(s * ft + t) * dim + k] = feature_value(s, t, k);
    hsize_t dims3[3] = {(hsize_t)n, (hsize_t)ft, (hsize_t)dim};
    hsize_t dims2[2] = {(hsize_t)n, (hsize_t)ft * (hsize_t)dim};
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    hid_t sp = H5Screate_simple(rank, rank == 3 ? dims3 : dims2, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(sp >= 0 && ds >= 0);
    CU_ASSERT(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds), H5Sclose(sp);
    CU_ASSERT_FATAL(H5Fclose(f) >= 0);
    free(v);
}

static void write_file(const char *name, const char *text) {
    char path[128];
    path_in_dir(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

/* Line 2 is blank (skipped); line 4 has no "lang". */
static const char *const good_jsonl =
    "{\"sample\": 2, \"prompt\": \"What is this? \", \"answer\": \"cat\", \"lang\": \"en\"}\n"
    "\n"
    "{\"sample\": 4, \"prompt\": \"\xe8\xbf\x99\xe6\x98\xaf\xe4\xbb\x80\xe4\xb9\x88\xef\xbc\x9f\", "
    "\"choices\": [\"\xe7\x8b\x97\", \"\xe7\x8c\xab\", \"\xe9\xb8\x9f\"], \"label\": 1, "
    "\"lang\": \"zh\"}\n"
    "{\"sample\": 0, \"prompt\": \"q \", \"answer\": \"yes\"}\n";

static int open_set(molt_feature_set **fs, const char *h5, const char *jsonl, int T) {
    char hp[128], jp[128];
    path_in_dir(hp, sizeof hp, h5);
    path_in_dir(jp, sizeof jp, jsonl);
    *fs = NULL;
    return molt_feature_set_open(fs, hp, jp, FS_FT, FS_DIM, T);
}

/* Row layout of a feature example: <bos> <pad>×n_ft prompt answer [<eos>]. */
static void check_feature_row(const char *prompt, const char *ans, int with_eos, int sample,
                              const int32_t *in, const int32_t *tg, const float *feat, int plen) {
    int32_t seq[FS_T + 1];
    int len = 0;
    seq[len++] = MOLT_TOK_BOS;
    for (int j = 0; j < FS_FT; j++)
        seq[len++] = MOLT_TOK_PAD;
    for (const unsigned char *p = (const unsigned char *)prompt; *p; p++)
        seq[len++] = *p;
    CU_ASSERT_EQUAL(plen, len);
    int prompt_len = len;
    for (const unsigned char *p = (const unsigned char *)ans; *p; p++)
        seq[len++] = *p;
    if (with_eos) seq[len++] = MOLT_TOK_EOS;
    for (int t = 0; t < FS_T; t++) {
        CU_ASSERT_EQUAL(in[t], t < len ? seq[t] : MOLT_TOK_PAD);
        CU_ASSERT_EQUAL(tg[t], t + 1 < len && t >= prompt_len - 1 ? seq[t + 1] : MOLT_IGNORE);
    }
    for (int t = 0; feat && t < FS_FT; t++)
        for (int k = 0; k < FS_DIM; k++)
            CU_ASSERT_EQUAL(feat[t * FS_DIM + k], feature_value(sample, t, k));
}

static void test_feature_set(void) {
    write_h5("good.h5", "/features", FS_N, FS_FT, FS_DIM, 3);
    write_file("good.jsonl", good_jsonl);
    molt_feature_set *fs;
    CU_ASSERT_EQUAL_FATAL(open_set(&fs, "good.h5", "good.jsonl", FS_T), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_feature_set_size(fs), 3);
    const molt_feature_example *e0 = molt_feature_set_example(fs, 0),
                               *e1 = molt_feature_set_example(fs, 1),
                               *e2 = molt_feature_set_example(fs, 2);
    CU_ASSERT(e0->sample == 2 && e0->n_choices == 1 && e0->label == 0 && e0->lang == 0);
    CU_ASSERT_STRING_EQUAL(e0->prompt, "What is this? ");
    CU_ASSERT_STRING_EQUAL(e0->choices[0], "cat");
    CU_ASSERT(e1->sample == 4 && e1->n_choices == 3 && e1->label == 1 && e1->lang == 1);
    CU_ASSERT_STRING_EQUAL(e1->choices[1], "\xe7\x8c\xab");
    CU_ASSERT(e2->sample == 0 && e2->n_choices == 1 && e2->lang == -1);
    for (int s = 0; s < FS_N; s++)
        CU_ASSERT_EQUAL(molt_feature_set_features(fs, s)[FS_FT * FS_DIM - 1],
                        feature_value(s, FS_FT - 1, FS_DIM - 1));

    int32_t in[FS_T], tg[FS_T];
    float feat[FS_FT * FS_DIM];
    int plen = -1, lang = -7;
    CU_ASSERT_EQUAL_FATAL(molt_feature_set_row(fs, 0, FS_T, in, tg, feat, &plen, &lang), MOLT_OK);
    CU_ASSERT_EQUAL(lang, 0);
    check_feature_row(e0->prompt, "cat", 1, 2, in, tg, feat, plen);
    /* A multiple-choice line trains on choices[label]. */
    CU_ASSERT_EQUAL_FATAL(molt_feature_set_row(fs, 1, FS_T, in, tg, feat, &plen, &lang), MOLT_OK);
    CU_ASSERT_EQUAL(lang, 1);
    check_feature_row(e1->prompt, e1->choices[1], 1, 4, in, tg, feat, plen);
    CU_ASSERT_EQUAL_FATAL(molt_feature_set_row(fs, 2, FS_T, in, tg, NULL, &plen, &lang), MOLT_OK);
    CU_ASSERT_EQUAL(lang, -1);
    check_feature_row("q ", "yes", 1, 0, in, tg, NULL, plen);
    /* Scoring a choice: that choice's bytes, no <eos>. */
    for (int j = 0; j < 3; j++) {
        CU_ASSERT_EQUAL_FATAL(molt_feature_set_row_with(fs, 1, j, FS_T, in, tg, feat, &plen),
                              MOLT_OK);
        check_feature_row(e1->prompt, e1->choices[j], 0, 4, in, tg, feat, plen);
    }
    /* Answer -1 of an answer line: the answer with <eos>. */
    CU_ASSERT_EQUAL_FATAL(molt_feature_set_row_with(fs, 0, -1, FS_T, in, tg, feat, &plen),
                          MOLT_OK);
    check_feature_row(e0->prompt, "cat", 1, 2, in, tg, feat, plen);
    /* Too short a row for this call. */
    CU_ASSERT_EQUAL(molt_feature_set_row_with(fs, 0, -1, 1 + FS_FT + 14 + 2, in, tg, feat, &plen),
                    MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_feature_set_row_with(fs, 0, -1, 1 + FS_FT + 14 + 3, in, tg, feat, &plen),
                    MOLT_OK);
    molt_feature_set_close(fs);
    molt_feature_set_close(NULL);

    /* Through molt_data: sample g is line g mod 3; task = language. */
    molt_config c;
    molt_config_defaults(&c);
    c.model.projector = MOLT_PROJECTOR_MLP2X_GELU;
    c.model.feat_tokens = FS_FT;
    c.model.feat_dim = FS_DIM;
    c.train.seq_len = FS_T;
    c.data.source = MOLT_DATA_FEATURES;
    path_in_dir(c.data.train_features, sizeof c.data.train_features, "good.h5");
    path_in_dir(c.data.train_path, sizeof c.data.train_path, "good.jsonl");
    molt_batch b, again;
    CU_ASSERT_EQUAL_FATAL(fill(&c, 4, 6, &b), MOLT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.feat);
    CU_ASSERT(b.n_ft == FS_FT && b.feat_dim == FS_DIM);
    const int want_task[3] = {0, 1, -1}, want_sample[3] = {2, 4, 0};
    for (int i = 0; i < 6; i++) {
        int line = (4 + i) % 3;
        CU_ASSERT_EQUAL(b.task[i], want_task[line]);
        CU_ASSERT_EQUAL(b.feat[i * FS_FT * FS_DIM], feature_value(want_sample[line], 0, 0));
        CU_ASSERT_EQUAL(b.inputs[i * FS_T + 1], MOLT_TOK_PAD);
    }
    CU_ASSERT_EQUAL(b.plen[2], 1 + FS_FT + 14); /* line 0, "What is this? " */
    check_feature_row("What is this? ", "cat", 1, 2, b.inputs + 2 * FS_T, b.targets + 2 * FS_T,
                      b.feat + 2 * FS_FT * FS_DIM, b.plen[2]);
    CU_ASSERT_EQUAL_FATAL(fill(&c, 4, 6, &again), MOLT_OK);
    CU_ASSERT(batches_equal(&b, 0, &again));
    molt_batch_free(&again);
    CU_ASSERT_EQUAL_FATAL(fill(&c, 7, 3, &again), MOLT_OK);
    CU_ASSERT(batches_equal(&b, 3, &again));
    molt_batch_free(&again);
    molt_batch_free(&b);
}

static void expect_open_error(const char *what, const char *h5, const char *jsonl_text, int T) {
    write_file("case.jsonl", jsonl_text);
    molt_feature_set *fs = NULL;
    int rc = open_set(&fs, h5, "case.jsonl", T);
    if (rc != MOLT_ERR_INPUT) fprintf(stderr, "features case '%s' gave %d\n", what, rc);
    CU_ASSERT_EQUAL(rc, MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(fs);
    molt_feature_set_close(fs);
}

#define GOOD_LINE "{\"sample\": 1, \"prompt\": \"p \", \"answer\": \"a\"}\n"

static void test_feature_set_errors(void) {
    write_h5("good.h5", "/features", FS_N, FS_FT, FS_DIM, 3);
    write_h5("tokens.h5", "/features", FS_N, FS_FT + 1, FS_DIM, 3);
    write_h5("dim.h5", "/features", FS_N, FS_FT, FS_DIM - 1, 3);
    write_h5("empty.h5", "/features", 0, FS_FT, FS_DIM, 3);
    write_h5("flat.h5", "/features", FS_N, FS_FT, FS_DIM, 2);
    write_h5("other.h5", "/feats", FS_N, FS_FT, FS_DIM, 3);
    write_file("notes.h5", "not an HDF5 file\n");
    /* The baseline is good, so each case below fails for its own fault. */
    write_file("base.jsonl", GOOD_LINE);
    molt_feature_set *fs = NULL;
    CU_ASSERT_EQUAL_FATAL(open_set(&fs, "good.h5", "base.jsonl", FS_T), MOLT_OK);
    molt_feature_set_close(fs);

    expect_open_error("/features feat_tokens", "tokens.h5", GOOD_LINE, FS_T);
    expect_open_error("/features feat_dim", "dim.h5", GOOD_LINE, FS_T);
    expect_open_error("/features of 0 samples", "empty.h5", GOOD_LINE, FS_T);
    expect_open_error("/features 2-D", "flat.h5", GOOD_LINE, FS_T);
    expect_open_error("no /features", "other.h5", GOOD_LINE, FS_T);
    expect_open_error("not HDF5", "notes.h5", GOOD_LINE, FS_T);
    expect_open_error("missing HDF5", "nope.h5", GOOD_LINE, FS_T);
    CU_ASSERT_EQUAL(open_set(&fs, "good.h5", "nope.jsonl", FS_T), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(fs);

    const char *head = "{\"sample\": 1, \"prompt\": \"p \", ";
    char line[512];
    const struct {
        const char *what, *text;
        int tail; /* 1: `head` + text; 0: text alone */
    } cases[] = {
        {"sample = n", "{\"sample\": 5, \"prompt\": \"p \", \"answer\": \"a\"}", 0},
        {"sample < 0", "{\"sample\": -1, \"prompt\": \"p \", \"answer\": \"a\"}", 0},
        {"sample not integral", "{\"sample\": 1.5, \"prompt\": \"p \", \"answer\": \"a\"}", 0},
        {"sample a string", "{\"sample\": \"1\", \"prompt\": \"p \", \"answer\": \"a\"}", 0},
        {"no sample", "{\"prompt\": \"p \", \"answer\": \"a\"}", 0},
        {"no prompt", "{\"sample\": 1, \"answer\": \"a\"}", 0},
        {"label = n", "\"choices\": [\"a\", \"b\"], \"label\": 2}", 1},
        {"label < 0", "\"choices\": [\"a\", \"b\"], \"label\": -1}", 1},
        {"no label", "\"choices\": [\"a\", \"b\"]}", 1},
        {"empty choices", "\"choices\": [], \"label\": 0}", 1},
        {"empty choice", "\"choices\": [\"a\", \"\"], \"label\": 0}", 1},
        {"neither answer nor choices", "\"lang\": \"en\"}", 1},
        {"both answer and choices", "\"answer\": \"a\", \"choices\": [\"a\"], \"label\": 0}", 1},
        {"answer a number", "\"answer\": 3}", 1},
        {"not JSON", "{\"sample\": 1, \"prompt\": \"p \", \"answer\": \"a\"", 0},
        {"not an object", "[1, 2, 3]", 0},
        {"unknown lang", "\"answer\": \"a\", \"lang\": \"xx\"}", 1},
        {"lang not a string", "\"answer\": \"a\", \"lang\": 1}", 1},
        {"label out of range, with lang", "\"choices\": [\"a\"], \"label\": 1, \"lang\": \"en\"}",
         1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        /* The bad line second, after a good one. */
        snprintf(line, sizeof line, "%s%s%s\n", GOOD_LINE, cases[k].tail ? head : "",
                 cases[k].text);
        expect_open_error(cases[k].what, "good.h5", line, FS_T);
    }
    /* No examples at all. */
    expect_open_error("empty JSONL", "good.h5", "\n  \n", FS_T);
    /* Longer than seq_len: <bos>, 3 span tokens, "p ", "a", <eos> are 8
     * tokens, so it fits T = 7 (<eos> is only a target) and not T = 6; a
     * long choice counts too. */
    write_file("fit.jsonl", GOOD_LINE);
    CU_ASSERT_EQUAL(open_set(&fs, "good.h5", "fit.jsonl", 7), MOLT_OK);
    molt_feature_set_close(fs);
    expect_open_error("longer than seq_len", "good.h5", GOOD_LINE, 6);
    expect_open_error("a choice longer than seq_len", "good.h5",
                      "{\"sample\": 1, \"prompt\": \"p \", \"choices\": [\"a\", "
                      "\"a much longer choice than fits\"], \"label\": 0}\n",
                      16);
}

static int run(int argc, char **argv) {
    molt_test_case cases[] = {{"utf-8 validator", test_utf8_validator},
                              {"lang_mix: weights and errors", test_parse_mix},
                              {"lexicon: names per language", test_lexicon},
                              {"train items: language mix and classes", test_train_items},
                              {"eval items: choices and seeds", test_eval_items},
                              {"init: bad mix and class counts", test_init_errors},
                              {"rows: layout, features and caption", test_rows},
                              {"rows: caption must fit the span", test_caption_fit},
                              {"rows: prototypes and noise", test_row_features},
                              {"rows: seq_len too short", test_row_too_short},
                              {"batch: feature room", test_batch_features},
                              {"data: mmmb_lite batches", test_data_mmmb},
                              {"features: HDF5 + JSONL rows", test_feature_set},
                              {"features: bad files", test_feature_set_errors},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "mmmb", cases);
}

int main(int argc, char **argv) {
    return molt_run_in_scratch(argc, argv, "mmmb", dir, sizeof dir, run);
}
