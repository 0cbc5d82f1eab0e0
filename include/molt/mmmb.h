/* mmmb.h — mmmb_lite, the built-in multilingual feature benchmark (Parrot's
 * MMMB in miniature, DESIGN §4 Parrot; README "Parrot").
 *
 * A sample shows one of K objects as `feat_tokens` feature tokens: the class
 * prototype (N(0,1) entries, fixed by data.mmmb_seed) plus N(0, noise²)
 * noise. A prompt asks for the object in one of six languages (en zh pt ar
 * tr ru; UTF-8 templates, two per language) and the answer is the class name
 * in the prompt's language. A row is
 *     <bos> [feature span] prompt-bytes answer-bytes <eos> <pad>…
 * with the span's input ids <pad> (the model writes the projected features
 * there), or, with data.mmmb_caption, the English class name as bytes padded
 * with spaces (text-only LM pretraining). Targets: the answer and <eos>.
 * Training samples draw the language from data.lang_mix and everything else
 * from train.seed; the evaluation set depends on data.mmmb_seed only, so
 * every run of a sweep is scored on the same questions: item i of language L
 * asks for a class with MOLT_MMMB_CHOICES candidate answers (the right one
 * and distinct distractors, in a seeded order). */
#ifndef MOLT_MMMB_H
#define MOLT_MMMB_H
#include <stdint.h>

#include "molt/config.h"

enum { MOLT_MMMB_LANGS = 6, MOLT_MMMB_MAX_CLASSES = 12, MOLT_MMMB_CHOICES = 4 };
extern const char *const molt_mmmb_lang_names[MOLT_MMMB_LANGS]; /* "en" "zh" "pt" "ar" "tr" "ru" */

typedef struct {
    int K, n_ft, feat_dim, caption;
    float noise;
    uint64_t seed, bench_seed;   /* train.seed, data.mmmb_seed */
    double mix[MOLT_MMMB_LANGS]; /* normalised cumulative weights of data.lang_mix */
    float *proto;                /* [K, n_ft, feat_dim] (owned) */
} molt_mmmb;

/* One question: language, class, template, and the evaluation choices
 * (choice[j] = a class id; label = the index of the right one). */
typedef struct {
    int lang, cls, tmpl, label;
    int choice[MOLT_MMMB_CHOICES];
} molt_mmmb_item;

/* Parse "en:0.8,zh:0.04,…" into cumulative weights normalised to 1. Every
 * weight >= 0, at least one > 0, languages named once. MOLT_ERR_INPUT naming
 * `key` and the entry at fault. */
int molt_mmmb_parse_mix(const char *text, const char *key, double cum[MOLT_MMMB_LANGS]);
int molt_mmmb_init(molt_mmmb *mm, const molt_config *c);
void molt_mmmb_free(molt_mmmb *mm);
/* The class name of class k in language `lang` (UTF-8). */
const char *molt_mmmb_class_name(int lang, int k);
/* Training sample g (language from the mix) or evaluation item i of `lang`. */
molt_mmmb_item molt_mmmb_train_item(const molt_mmmb *mm, uint64_t g);
molt_mmmb_item molt_mmmb_eval_item(const molt_mmmb *mm, int lang, uint64_t i);
/* Lay out the row of `it` answered with class `answer` (it->cls for
 * training) in T positions; `feat` gets [n_ft, feat_dim] (noise keyed by
 * (split, g)); *plen = the position where the answer starts. with_eos: the
 * answer ends with <eos> (training) or not (scoring a choice). MOLT_ERR_INPUT
 * if the row does not fit T. */
int molt_mmmb_row(const molt_mmmb *mm, const molt_mmmb_item *it, int split, uint64_t g, int answer,
                  int with_eos, int T, int32_t *inputs, int32_t *targets, float *feat, int *plen);
/* The least train.seq_len that holds every row (any language, template and
 * class) with its <eos> as the last target. */
int molt_mmmb_longest(const molt_mmmb *mm);

#endif
