/* dataset.c — batches addressed by global sample index (see molt/data.h).
 *
 * Sample g of a split is a pure function of (config, split, g):
 *   tasks:        task = uniform over the enabled tasks, drawn from stream
 *                 MOLT_RNG_DATA (a = split, b = low 32 bits of g, c = high 32
 *                 bits); the example is molt_task_example(task, seed, split, g).
 *   shards, text: the token stream is cut into W = (n - 1) / T windows of
 *                 T + 1 tokens at stride T; sample g is window perm_e[g mod W]
 *                 of epoch e = g / W, perm_e a Fisher–Yates permutation from
 *                 MOLT_RNG_SHUFFLE (a, b = epoch low/high, c = split).
 * The permutation of the current epoch is cached in the object; it is a cache,
 * not state: any epoch can be recomputed at any time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/data.h"
#include "molt/err.h"
#include "molt/mmmb.h"
#include "molt/rng.h"
#include "data/features.h"

struct molt_data {
    int source, split;
    uint64_t seed;
    /* tasks */
    int task_ids[MOLT_NTASKS], n_tasks, prompt_loss;
    /* shards, text: the concatenated token stream and its windows */
    uint32_t *tokens;
    size_t n_tokens;
    int seq_len;
    uint32_t n_windows;
    uint32_t *perm; /* [n_windows] order of epoch perm_epoch, once perm_valid */
    uint64_t perm_epoch;
    int perm_valid;
    /* mmmb_lite, features */
    molt_mmmb mmmb;
    molt_feature_set *fs;
    int n_ft, feat_dim, featured;
};

int molt_batch_alloc(molt_batch *b, int n_seq, int seq_len) {
    int rc = MOLT_OK;
    memset(b, 0, sizeof *b);
    if (n_seq <= 0 || seq_len <= 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "batch of %d sequences of %d tokens: both must be positive",
                  n_seq, seq_len);
    size_t n = (size_t)n_seq * (size_t)seq_len;
    MOLT_ALLOC(b->inputs, n);
    MOLT_ALLOC(b->targets, n);
    MOLT_ALLOC(b->task, n_seq);
    b->n_seq = n_seq;
    b->seq_len = seq_len;
done:
    if (rc != MOLT_OK) molt_batch_free(b);
    return rc;
}

int molt_batch_features(molt_batch *b, int n_ft, int feat_dim) {
    int rc = MOLT_OK;
    if (b->feat && b->n_ft == n_ft && b->feat_dim == feat_dim && b->feat_rows >= b->n_seq)
        return MOLT_OK;
    free(b->feat), free(b->plen);
    b->feat = NULL, b->plen = NULL, b->n_ft = b->feat_dim = b->feat_rows = 0;
    MOLT_ALLOC(b->feat, (size_t)b->n_seq * n_ft * feat_dim);
    MOLT_ALLOC(b->plen, b->n_seq);
    b->n_ft = n_ft, b->feat_dim = feat_dim, b->feat_rows = b->n_seq;
done:
    return rc;
}

void molt_batch_free(molt_batch *b) {
    if (!b) return;
    free(b->feat), free(b->plen);
    free(b->inputs);
    free(b->targets);
    free(b->task);
    memset(b, 0, sizeof *b);
}

typedef int (*append_fn)(molt_data *d, const char *path, int vocab_size);

static int append_shard(molt_data *d, const char *path, int vocab_size) {
    int rc = MOLT_OK;
    molt_shard s;
    MOLT_TRY(molt_shard_read(&s, path, vocab_size));
    uint32_t *grown = realloc(d->tokens, (d->n_tokens + s.n + 1) * sizeof *grown);
    if (!grown)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "%s: out of memory for %zu tokens", path, d->n_tokens + s.n);
    d->tokens = grown;
    if (s.n) memcpy(d->tokens + d->n_tokens, s.tokens, s.n * sizeof *s.tokens);
    d->n_tokens += s.n;
done:
    molt_shard_free(&s);
    return rc;
}

static int append_text(molt_data *d, const char *path, int vocab_size) {
    int rc = MOLT_OK;
    if (vocab_size < MOLT_TOK_MIN_VOCAB)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: data.source = text needs model.vocab_size >= %d, got %d",
                  path, MOLT_TOK_MIN_VOCAB, vocab_size);
    MOLT_TRY(molt_tokenize_file(path, &d->tokens, &d->n_tokens));
done:
    return rc;
}

/* Load each path of the comma-separated `list` with `append`, in order. */
static int load_list(molt_data *d, const char *key, const char *list, int vocab_size,
                     append_fn append) {
    int rc = MOLT_OK;
    char path[MOLT_PATH_MAX];
    if (!list[0]) MOLT_FAIL(MOLT_ERR_INPUT, "%s is empty: name a file or a comma list", key);
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s = '%s': empty entry in the list", key, list);
        if (len >= sizeof path)
            MOLT_FAIL(MOLT_ERR_INPUT, "%s = '%s': an entry is longer than %d bytes", key, list,
                      MOLT_PATH_MAX - 1);
        memcpy(path, p, len);
        path[len] = '\0';
        MOLT_TRY(append(d, path, vocab_size));
        if (!end) break;
        p = end + 1;
    }
done:
    return rc;
}

static int open_stream(molt_data *d, const molt_config *c) {
    int rc = MOLT_OK;
    const char *key = "data.train_path", *list = c->data.train_path;
    if (d->split == MOLT_SPLIT_EVAL && c->data.eval_path[0]) {
        key = "data.eval_path";
        list = c->data.eval_path;
    }
    d->seq_len = c->train.seq_len;
    if (d->seq_len <= 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "train.seq_len must be positive, got %d", d->seq_len);
    MOLT_TRY(load_list(d, key, list, c->model.vocab_size,
                       d->source == MOLT_DATA_SHARDS ? append_shard : append_text));
    size_t w = d->n_tokens ? (d->n_tokens - 1) / (size_t)d->seq_len : 0;
    if (w == 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %zu tokens is too few for train.seq_len %d", list,
                  d->n_tokens, d->seq_len);
    if (w > UINT32_MAX)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s: %zu windows of train.seq_len %d exceed the limit of %u",
                  list, w, d->seq_len, UINT32_MAX);
    d->n_windows = (uint32_t)w;
    MOLT_ALLOC(d->perm, d->n_windows);
done:
    return rc;
}

static int open_tasks(molt_data *d, const molt_config *c) {
    int rc = MOLT_OK;
    const char *key = "data.tasks";
    unsigned mask = c->data.tasks;
    /* eval.tasks = 0 means "the training tasks". */
    if (d->split == MOLT_SPLIT_EVAL && c->eval.tasks) {
        key = "eval.tasks";
        mask = c->eval.tasks;
    }
    if (mask >> MOLT_NTASKS)
        MOLT_FAIL(MOLT_ERR_INPUT, "%s = 0x%x names tasks beyond the %d built-in ones", key, mask,
                  MOLT_NTASKS);
    for (int t = 0; t < MOLT_NTASKS; t++)
        if (mask >> t & 1u) d->task_ids[d->n_tasks++] = t;
    if (d->n_tasks == 0) MOLT_FAIL(MOLT_ERR_INPUT, "%s selects no task", key);
    d->prompt_loss = c->data.prompt_loss;
done:
    return rc;
}

int molt_data_open(molt_data **out, const molt_config *c, int split) {
    int rc = MOLT_OK;
    molt_data *d = NULL;
    *out = NULL;
    if (split != MOLT_SPLIT_TRAIN && split != MOLT_SPLIT_EVAL)
        MOLT_FAIL(MOLT_ERR_INPUT, "unknown data split %d", split);
    MOLT_ALLOC(d, 1);
    d->source = c->data.source;
    d->split = split;
    d->seed = c->train.seed;
    switch (d->source) {
    case MOLT_DATA_TASKS:
        MOLT_TRY(open_tasks(d, c));
        break;
    case MOLT_DATA_SHARDS:
    case MOLT_DATA_TEXT:
        MOLT_TRY(open_stream(d, c));
        break;
    case MOLT_DATA_MMMB:
        MOLT_TRY(molt_mmmb_init(&d->mmmb, c));
        d->seq_len = c->train.seq_len;
        if (molt_mmmb_longest(&d->mmmb) > d->seq_len)
            MOLT_FAIL(MOLT_ERR_INPUT, "data.source = mmmb_lite: its longest row needs "
                      "train.seq_len >= %d, got %d", molt_mmmb_longest(&d->mmmb), d->seq_len);
        break;
    case MOLT_DATA_FEATURES: {
        int ev = split == MOLT_SPLIT_EVAL && c->data.eval_path[0];
        MOLT_TRY(molt_feature_set_open(&d->fs, ev ? c->data.eval_features : c->data.train_features,
                                       ev ? c->data.eval_path : c->data.train_path,
                                       c->model.feat_tokens, c->model.feat_dim, c->train.seq_len));
        d->seq_len = c->train.seq_len;
        break;
    }
    default:
        MOLT_FAIL(MOLT_ERR_INPUT, "data.source %d is not tasks, shards, text, mmmb_lite or "
                  "features", d->source);
    }
    d->featured = d->source == MOLT_DATA_FEATURES ||
                  (d->source == MOLT_DATA_MMMB && !c->data.mmmb_caption);
    d->n_ft = c->model.feat_tokens, d->feat_dim = c->model.feat_dim;
    *out = d;
    d = NULL;
done:
    molt_data_close(d);
    return rc;
}

void molt_data_close(molt_data *d) {
    if (!d) return;
    molt_mmmb_free(&d->mmmb);
    molt_feature_set_close(d->fs);
    free(d->tokens);
    free(d->perm);
    free(d);
}

/* One task example laid out as inputs/targets of T positions (DESIGN §8):
 * inputs[t] = tok[t] (pad past the end), targets[t] = tok[t+1] where that is
 * an answer token or <eos> (or any token with prompt_loss), else ignored. */
static int fill_task_row(const molt_data *d, uint64_t g, int T, int32_t *ex, int32_t *inputs,
                         int32_t *targets, int *task) {
    int rc = MOLT_OK;
    molt_rng r;
    molt_rng_init(&r, d->seed, MOLT_RNG_DATA, (uint32_t)d->split, (uint32_t)g, (uint32_t)(g >> 32));
    *task = d->task_ids[molt_rng_below(&r, (uint32_t)d->n_tasks)];
    int len = 0, prompt_len = 0;
    MOLT_TRY(molt_task_example(*task, d->seed, d->split, g, ex, T + 1, &len, &prompt_len));
    molt_task_layout(ex, len, prompt_len, d->prompt_loss, T, inputs, targets);
done:
    return rc;
}

void molt_task_layout(const int32_t *tokens, int len, int prompt_len, int prompt_loss, int T,
                      int32_t *inputs, int32_t *targets) {
    for (int t = 0; t < T; t++) {
        inputs[t] = t < len ? tokens[t] : MOLT_TOK_PAD;
        int scored = t + 1 < len && (t + 1 >= prompt_len || prompt_loss);
        targets[t] = scored ? tokens[t + 1] : MOLT_IGNORE;
    }
}

static void shuffle_epoch(molt_data *d, uint64_t epoch) {
    uint32_t n = d->n_windows;
    molt_rng r;
    molt_rng_init(&r, d->seed, MOLT_RNG_SHUFFLE, (uint32_t)epoch, (uint32_t)(epoch >> 32),
                  (uint32_t)d->split);
    for (uint32_t i = 0; i < n; i++)
        d->perm[i] = i;
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = molt_rng_below(&r, i + 1), tmp = d->perm[i];
        d->perm[i] = d->perm[j];
        d->perm[j] = tmp;
    }
    d->perm_epoch = epoch;
    d->perm_valid = 1;
}

static void fill_window_row(molt_data *d, uint64_t g, int32_t *inputs, int32_t *targets) {
    uint64_t epoch = g / d->n_windows;
    if (!d->perm_valid || d->perm_epoch != epoch) shuffle_epoch(d, epoch);
    const uint32_t *w = d->tokens + (size_t)d->perm[g % d->n_windows] * (size_t)d->seq_len;
    for (int t = 0; t < d->seq_len; t++) {
        inputs[t] = (int32_t)w[t];
        targets[t] = (int32_t)w[t + 1];
    }
}

int molt_data_fill(molt_data *d, uint64_t first, molt_batch *b) {
    int rc = MOLT_OK;
    int32_t *ex = NULL;
    int T = b->seq_len;
    if (d->source == MOLT_DATA_TASKS) {
        if (T + 1 < 16)
            MOLT_FAIL(MOLT_ERR_INPUT, "data.source = tasks needs train.seq_len >= 15, got %d", T);
        MOLT_ALLOC(ex, T + 1);
    } else if (T != d->seq_len) {
        MOLT_FAIL(MOLT_ERR_INPUT, "batch seq_len %d differs from train.seq_len %d", T, d->seq_len);
    }
    if (d->featured) MOLT_TRY(molt_batch_features(b, d->n_ft, d->feat_dim));
    for (int i = 0; i < b->n_seq; i++) {
        int32_t *inputs = b->inputs + (size_t)i * T, *targets = b->targets + (size_t)i * T;
        uint64_t g = first + (uint64_t)i;
        float *feat = b->feat ? b->feat + (size_t)i * b->n_ft * b->feat_dim : NULL;
        int plen = 0;
        if (d->source == MOLT_DATA_MMMB) {
            molt_mmmb_item it = molt_mmmb_train_item(&d->mmmb, g);
            MOLT_TRY(molt_mmmb_row(&d->mmmb, &it, MOLT_SPLIT_TRAIN, g, it.cls, 1, T, inputs,
                                   targets, feat, &plen));
            b->task[i] = it.lang;
            if (b->plen) b->plen[i] = plen;
        } else if (d->source == MOLT_DATA_FEATURES) {
            MOLT_TRY(molt_feature_set_row(d->fs, g % (uint64_t)molt_feature_set_size(d->fs), T,
                                          inputs, targets, feat, &plen, &b->task[i]));
            b->plen[i] = plen;
        } else if (d->source == MOLT_DATA_TASKS) {
            MOLT_TRY(fill_task_row(d, first + (uint64_t)i, T, ex, inputs, targets, &b->task[i]));
        } else {
            fill_window_row(d, first + (uint64_t)i, inputs, targets);
            b->task[i] = -1;
        }
    }
done:
    free(ex);
    return rc;
}
