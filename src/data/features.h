/* features.h — data.source = features: feature tokens computed elsewhere.
 *
 * An HDF5 file holds /features float32 [n_samples, feat_tokens, feat_dim];
 * a JSONL file holds one example per line:
 *     {"sample": i, "prompt": "...", "answer": "..."}
 *     {"sample": i, "prompt": "...", "choices": ["...", ...], "label": k}
 * with an optional "lang" (en zh pt ar tr ru) that labels per-language
 * accuracy. A training row is <bos> [span] prompt answer <eos> (the answer
 * of a multiple-choice line is choices[label]); line g of the training set
 * is example g mod lines, in file order. Errors name FILE:LINE, the key, or
 * the dataset and its shape. */
#ifndef MOLT_DATA_FEATURES_H
#define MOLT_DATA_FEATURES_H
#include <stdint.h>

typedef struct {
    long sample;                /* row of /features */
    char *prompt;               /* UTF-8 */
    char **choices;             /* n_choices >= 1; choice 0 is the answer of an answer line */
    int n_choices, label, lang; /* lang: -1 when absent */
} molt_feature_example;

typedef struct molt_feature_set molt_feature_set;

int molt_feature_set_open(molt_feature_set **out, const char *h5_path, const char *jsonl_path,
                          int n_ft, int feat_dim, int seq_len);
void molt_feature_set_close(molt_feature_set *fs);
long molt_feature_set_size(const molt_feature_set *fs);
const molt_feature_example *molt_feature_set_example(const molt_feature_set *fs, long i);
const float *molt_feature_set_features(const molt_feature_set *fs, long sample);
/* Example i laid out with choice `answer` (-1: its answer, with <eos>). */
int molt_feature_set_row_with(const molt_feature_set *fs, long i, int answer, int T,
                              int32_t *inputs, int32_t *targets, float *feat, int *plen);
/* Training row of example i; *lang = its language or -1. */
int molt_feature_set_row(const molt_feature_set *fs, uint64_t i, int T, int32_t *inputs,
                         int32_t *targets, float *feat, int *plen, int *lang);

#endif
