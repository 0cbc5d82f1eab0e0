/* mmmb.c — mmmb_lite: lexicon, samples and rows (include/molt/mmmb.h). */
#include "molt/mmmb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/data.h"
#include "molt/err.h"
#include "molt/rng.h"

const char *const molt_mmmb_lang_names[MOLT_MMMB_LANGS] = {"en", "zh", "pt", "ar", "tr", "ru"};

/* Class names, [language][class] (UTF-8). */
static const char *const names[MOLT_MMMB_LANGS][MOLT_MMMB_MAX_CLASSES] = {
    {"cat", "dog", "bird", "fish", "horse", "apple", "car", "tree", "house", "book", "flower",
     "ball"},
    {"猫", "狗", "鸟", "鱼", "马", "苹果", "汽车", "树", "房子", "书", "花", "球"},
    {"gato", "cão", "pássaro", "peixe", "cavalo", "maçã", "carro", "árvore", "casa", "livro",
     "flor", "bola"},
    {"قطة", "كلب", "طائر", "سمكة", "حصان", "تفاحة", "سيارة", "شجرة", "بيت", "كتاب", "زهرة", "كرة"},
    {"kedi", "köpek", "kuş", "balık", "at", "elma", "araba", "ağaç", "ev", "kitap", "çiçek", "top"},
    {"кошка", "собака", "птица", "рыба", "лошадь", "яблоко", "машина", "дерево", "дом", "книга",
     "цветок", "мяч"},
};

/* Question templates, two per language. */
enum { N_TEMPLATES = 2 };
static const char *const templates[MOLT_MMMB_LANGS][N_TEMPLATES] = {
    {"What is this? ", "Name the object: "}, {"这是什么？", "图中是什么？"},
    {"O que é isto? ", "Qual é o objeto? "}, {"ما هذا؟ ", "ما اسم الشيء؟ "},
    {"Bu nedir? ", "Nesnenin adı ne? "},     {"Что это? ", "Назови предмет: "},
};

int molt_mmmb_parse_mix(const char *text, const char *key, double cum[MOLT_MMMB_LANGS]) {
    int rc = MOLT_OK, seen[MOLT_MMMB_LANGS] = {0};
    double w[MOLT_MMMB_LANGS] = {0}, total = 0;
    for (const char *p = text;;) { /* an empty entry (",en:1", "en:1,") is an error */
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[64], *colon, *rest;
        if (len == 0 || len >= sizeof entry)
            MOLT_FAIL(MOLT_ERR_INPUT,
                      "%s = '%s': entries are LANG:WEIGHT (LANG one of en zh pt "
                      "ar tr ru)",
                      key, text);
        memcpy(entry, p, len);
        entry[len] = '\0';
        if (!(colon = strchr(entry, ':')))
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: entry '%s' is not LANG:WEIGHT", key, entry);
        *colon = '\0';
        int l = -1;
        for (int k = 0; k < MOLT_MMMB_LANGS; k++)
            if (!strcmp(entry, molt_mmmb_lang_names[k])) l = k;
        if (l < 0)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: unknown language '%s' (allowed: en zh pt ar tr ru)", key,
                      entry);
        if (seen[l]++) MOLT_FAIL(MOLT_ERR_INPUT, "%s: language '%s' named twice", key, entry);
        double v = strtod(colon + 1, &rest);
        if (rest == colon + 1 || *rest || !(v >= 0) || v > 1e9)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s: weight '%s' of %s is not a number >= 0", key, colon + 1,
                      entry);
        w[l] = v, total += v;
        if (!end) break;
        p = end + 1;
    }
    if (!(total > 0))
        MOLT_FAIL(MOLT_ERR_INPUT, "%s = '%s': no language has a weight > 0", key, text);
    for (int l = 0; l < MOLT_MMMB_LANGS; l++)
        cum[l] = (l ? cum[l - 1] : 0) + w[l] / total;
    cum[MOLT_MMMB_LANGS - 1] = 1.0;
done:
    return rc;
}

int molt_mmmb_init(molt_mmmb *mm, const molt_config *c) {
    int rc = MOLT_OK;
    memset(mm, 0, sizeof *mm);
    mm->K = c->data.mmmb_classes;
    mm->n_ft = c->model.feat_tokens;
    mm->feat_dim = c->model.feat_dim;
    mm->caption = c->data.mmmb_caption;
    mm->noise = (float)c->data.mmmb_noise;
    mm->seed = c->train.seed;
    mm->bench_seed = c->data.mmmb_seed;
    if (mm->K < MOLT_MMMB_CHOICES || mm->K > MOLT_MMMB_MAX_CLASSES)
        MOLT_FAIL(MOLT_ERR_INPUT, "data.mmmb_classes = %d: between %d and %d", mm->K,
                  MOLT_MMMB_CHOICES, MOLT_MMMB_MAX_CLASSES);
    MOLT_TRY(molt_mmmb_parse_mix(c->data.lang_mix, "data.lang_mix", mm->mix));
    const long per = (long)mm->n_ft * mm->feat_dim;
    MOLT_ALLOC(mm->proto, (long)mm->K * per);
    for (int k = 0; k < mm->K; k++) {
        molt_rng r;
        molt_rng_init(&r, mm->bench_seed, MOLT_RNG_MMMB, 0, (uint32_t)k, 0);
        for (long j = 0; j < per; j++)
            mm->proto[k * per + j] = molt_rng_normal(&r);
    }
done:
    if (rc) molt_mmmb_free(mm);
    return rc;
}

void molt_mmmb_free(molt_mmmb *mm) {
    free(mm->proto);
    mm->proto = NULL;
}

const char *molt_mmmb_class_name(int lang, int k) {
    return names[lang][k];
}

molt_mmmb_item molt_mmmb_train_item(const molt_mmmb *mm, uint64_t g) {
    molt_mmmb_item it = {0};
    molt_rng r;
    molt_rng_init(&r, mm->seed, MOLT_RNG_MMMB, 1, (uint32_t)g, (uint32_t)(g >> 32));
    float u = molt_rng_uniform(&r);
    it.lang = MOLT_MMMB_LANGS - 1;
    for (int l = MOLT_MMMB_LANGS - 1; l >= 0; l--)
        if (u < mm->mix[l]) it.lang = l;
    it.cls = (int)molt_rng_below(&r, (uint32_t)mm->K);
    it.tmpl = (int)molt_rng_below(&r, N_TEMPLATES);
    it.label = -1;
    return it;
}

molt_mmmb_item molt_mmmb_eval_item(const molt_mmmb *mm, int lang, uint64_t i) {
    molt_mmmb_item it = {0};
    molt_rng r;
    molt_rng_init(&r, mm->bench_seed, MOLT_RNG_MMMB, 3 + (uint32_t)lang, (uint32_t)i,
                  (uint32_t)(i >> 32));
    it.lang = lang;
    it.cls = (int)molt_rng_below(&r, (uint32_t)mm->K);
    it.tmpl = (int)molt_rng_below(&r, N_TEMPLATES);
    it.label = (int)molt_rng_below(&r, MOLT_MMMB_CHOICES);
    for (int j = 0; j < MOLT_MMMB_CHOICES; j++) {
        if (j == it.label) {
            it.choice[j] = it.cls;
            continue;
        }
        for (;;) { /* a distractor not yet chosen */
            int k = (int)molt_rng_below(&r, (uint32_t)mm->K), dup = k == it.cls;
            for (int q = 0; q < j; q++)
                dup |= it.choice[q] == k;
            if (!dup) {
                it.choice[j] = k;
                break;
            }
        }
    }
    return it;
}

static int put_bytes(int32_t *tok, int at, int cap, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (at >= cap) return -1;
        tok[at++] = *p;
    }
    return at;
}

int molt_mmmb_row(const molt_mmmb *mm, const molt_mmmb_item *it, int split, uint64_t g, int answer,
                  int with_eos, int T, int32_t *inputs, int32_t *targets, float *feat, int *plen) {
    int rc = MOLT_OK, at = 0, cap = T + 1, prompt_len;
    int32_t *tok = NULL;
    MOLT_ALLOC(tok, cap);
    tok[at++] = MOLT_TOK_BOS;
    if (mm->caption) { /* the English name as text, padded to the span */
        const char *en = names[0][it->cls];
        int n = (int)strlen(en);
        if (n > mm->n_ft || 1 + mm->n_ft > cap)
            MOLT_FAIL(MOLT_ERR_INPUT, "mmmb_lite: caption '%s' does not fit model.feat_tokens = %d",
                      en, mm->n_ft);
        for (int j = 0; j < mm->n_ft; j++)
            tok[at++] = j < n ? (unsigned char)en[j] : ' ';
    } else {
        if (1 + mm->n_ft > cap)
            MOLT_FAIL(MOLT_ERR_INPUT, "mmmb_lite: train.seq_len %d is too short", T);
        for (int j = 0; j < mm->n_ft; j++)
            tok[at++] = MOLT_TOK_PAD;
    }
    at = put_bytes(tok, at, cap, templates[it->lang][it->tmpl]);
    prompt_len = at;
    if (at >= 0) at = put_bytes(tok, at, cap, names[it->lang][answer]);
    if (at >= 0 && with_eos) at = at < cap ? (tok[at] = MOLT_TOK_EOS, at + 1) : -1;
    if (at < 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "mmmb_lite: a %s row needs train.seq_len >= %d, got %d",
                  molt_mmmb_lang_names[it->lang], molt_mmmb_longest(mm), T);
    molt_task_layout(tok, at, prompt_len, 0, T, inputs, targets);
    *plen = prompt_len;
    if (feat && !mm->caption) {
        const long per = (long)mm->n_ft * mm->feat_dim;
        molt_rng r;
        molt_rng_init(&r, split == MOLT_SPLIT_TRAIN ? mm->seed : mm->bench_seed, MOLT_RNG_MMMB,
                      2 + 16 * (uint32_t)split, (uint32_t)g, (uint32_t)(g >> 32));
        const float *pr = mm->proto + (long)it->cls * per;
        for (long j = 0; j < per; j++)
            feat[j] = pr[j] + mm->noise * molt_rng_normal(&r);
    }
done:
    free(tok);
    return rc;
}

int molt_mmmb_longest(const molt_mmmb *mm) {
    int most = 0;
    for (int l = 0; l < MOLT_MMMB_LANGS; l++)
        for (int t = 0; t < N_TEMPLATES; t++)
            for (int k = 0; k < mm->K; k++) {
                int n = 1 + mm->n_ft + (int)strlen(templates[l][t]) + (int)strlen(names[l][k]) + 1;
                if (n > most) most = n;
            }
    return most - 1; /* the last token (<eos>) is a target only */
}
