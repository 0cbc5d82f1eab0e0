/* test_dataset.c — batches by global sample index: independence of the batch
 * split, the target/ignore layout of task examples, shard windows and their
 * per-epoch permutation, the text source, and the open-time errors. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt/data.h"
#include "molt/err.h"
#include "testutil.h"

static char dir[64];

static void path_in_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static molt_config tasks_config(unsigned mask, int seq_len) {
    molt_config c;
    memset(&c, 0, sizeof c);
    c.model.vocab_size = 259;
    c.train.seq_len = seq_len;
    c.train.seed = 42;
    c.data.source = MOLT_DATA_TASKS;
    c.data.tasks = mask;
    return c;
}

static int fill(const molt_config *c, int split, uint64_t first, int n, int seq_len,
                molt_batch *b) {
    molt_data *d = NULL;
    memset(b, 0, sizeof *b);
    int rc = molt_data_open(&d, c, split);
    if (rc == MOLT_OK) rc = molt_batch_alloc(b, n, seq_len);
    if (rc == MOLT_OK) rc = molt_data_fill(d, first, b);
    molt_data_close(d);
    return rc;
}

/* Rows [0, n) of `small` equal rows [off, off + n) of `big`. */
static int rows_equal(const molt_batch *big, int off, const molt_batch *small) {
    size_t T = (size_t)small->seq_len, n = (size_t)small->n_seq;
    return big->seq_len == small->seq_len &&
           !memcmp(big->inputs + off * T, small->inputs, n * T * sizeof(int32_t)) &&
           !memcmp(big->targets + off * T, small->targets, n * T * sizeof(int32_t)) &&
           !memcmp(big->task + off, small->task, n * sizeof(int));
}

static void test_batch_alloc(void) {
    molt_batch b;
    CU_ASSERT_EQUAL(molt_batch_alloc(&b, 0, 8), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(b.inputs);
    CU_ASSERT_EQUAL(molt_batch_alloc(&b, 3, -1), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL_FATAL(molt_batch_alloc(&b, 3, 5), MOLT_OK);
    CU_ASSERT_EQUAL(b.n_seq, 3);
    CU_ASSERT_EQUAL(b.seq_len, 5);
    b.inputs[14] = b.targets[14] = b.task[2] = 1; /* the whole extent is there */
    molt_batch_free(&b);
    CU_ASSERT_PTR_NULL(b.inputs);
    molt_batch_free(&b); /* twice is harmless */
}

static void test_tasks_batch_split(void) {
    molt_config c = tasks_config((1u << MOLT_NTASKS) - 1, 48);
    molt_batch big, small, one;
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_TRAIN, 8, 8, 48, &big), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_TRAIN, 10, 4, 48, &small), MOLT_OK);
    CU_ASSERT(rows_equal(&big, 2, &small));
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_TRAIN, 15, 1, 48, &one), MOLT_OK);
    CU_ASSERT(rows_equal(&big, 7, &one));
    /* Distinct samples differ; the eval split is another stream. */
    CU_ASSERT(memcmp(big.inputs, big.inputs + 48, 48 * sizeof(int32_t)));
    molt_batch_free(&small);
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_EVAL, 8, 8, 48, &small), MOLT_OK);
    CU_ASSERT(!rows_equal(&big, 0, &small));
    molt_batch_free(&big);
    molt_batch_free(&small);
    molt_batch_free(&one);
}

/* The layout of one copy example, checked position by position against the
 * rule written out by hand: <bos> "copy " s "=" s <eos> <pad>…; targets are
 * the answer bytes then <eos>, the rest ignored. */
static void check_copy_layout(int prompt_loss) {
    enum { T = 32 };
    molt_config c = tasks_config(1u << MOLT_TASK_COPY, T);
    c.data.prompt_loss = prompt_loss;
    molt_batch b;
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_TRAIN, 3, 1, T, &b), MOLT_OK);
    CU_ASSERT_EQUAL(b.task[0], MOLT_TASK_COPY);
    const int32_t *in = b.inputs, *tg = b.targets;
    CU_ASSERT_EQUAL_FATAL(in[0], MOLT_TOK_BOS);
    const char *head = "copy ";
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL_FATAL(in[1 + i], head[i]);
    int n = 0;
    while (6 + n < T && in[6 + n] >= 'a' && in[6 + n] <= 'z')
        n++;
    CU_ASSERT_FATAL(n >= 1 && n <= 12);
    CU_ASSERT_EQUAL_FATAL(in[6 + n], '=');
    /* Expected full sequence, written from the rule. */
    int32_t seq[T + 1];
    int len = 0;
    seq[len++] = MOLT_TOK_BOS;
    for (int i = 0; i < 5; i++)
        seq[len++] = head[i];
    for (int i = 0; i < n; i++)
        seq[len++] = in[6 + i];
    seq[len++] = '=';
    int prompt_len = len; /* <bos> "copy " s "=" */
    for (int i = 0; i < n; i++)
        seq[len++] = in[6 + i];
    seq[len++] = MOLT_TOK_EOS;
    CU_ASSERT_EQUAL(prompt_len, 7 + n);
    CU_ASSERT_EQUAL(len, 8 + 2 * n);
    for (int t = 0; t < T; t++) {
        CU_ASSERT_EQUAL(in[t], t < len ? seq[t] : MOLT_TOK_PAD);
        int32_t want = MOLT_IGNORE;
        if (t + 1 < len && (prompt_loss || t >= prompt_len - 1)) want = seq[t + 1];
        CU_ASSERT_EQUAL(tg[t], want);
    }
    /* Spelled out: the '=' position predicts the first answer byte, the last
     * answer byte predicts <eos>, and <eos> itself predicts nothing. */
    CU_ASSERT_EQUAL(tg[prompt_len - 1], in[6]);
    CU_ASSERT_EQUAL(tg[len - 2], MOLT_TOK_EOS);
    CU_ASSERT_EQUAL(tg[len - 1], MOLT_IGNORE);
    CU_ASSERT_EQUAL(tg[prompt_len - 2], prompt_loss ? '=' : MOLT_IGNORE);
    CU_ASSERT_EQUAL(tg[0], prompt_loss ? 'c' : MOLT_IGNORE);
    molt_batch_free(&b);
}

static void test_tasks_layout(void) {
    check_copy_layout(0);
}

static void test_tasks_prompt_loss(void) {
    check_copy_layout(1);
}

static void test_task_choice(void) {
    unsigned mask = 1u << MOLT_TASK_ADD | 1u << MOLT_TASK_UPPER;
    molt_config c = tasks_config(mask, 24);
    c.eval.tasks = 1u << MOLT_TASK_MOD;
    molt_batch b;
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_TRAIN, 0, 400, 24, &b), MOLT_OK);
    int add = 0, up = 0;
    for (int i = 0; i < 400; i++) {
        add += b.task[i] == MOLT_TASK_ADD;
        up += b.task[i] == MOLT_TASK_UPPER;
        /* The prompt starts with the chosen task's keyword. */
        CU_ASSERT_EQUAL(b.inputs[i * 24 + 1], b.task[i] == MOLT_TASK_ADD ? 'a' : 'u');
    }
    CU_ASSERT_EQUAL(add + up, 400);
    CU_ASSERT(add > 150 && up > 150);
    molt_batch_free(&b);
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_EVAL, 0, 50, 24, &b), MOLT_OK);
    for (int i = 0; i < 50; i++)
        CU_ASSERT_EQUAL(b.task[i], MOLT_TASK_MOD);
    molt_batch_free(&b);
    /* eval.tasks = 0: the training tasks. */
    c.eval.tasks = 0;
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_EVAL, 0, 50, 24, &b), MOLT_OK);
    for (int i = 0; i < 50; i++)
        CU_ASSERT(b.task[i] == MOLT_TASK_ADD || b.task[i] == MOLT_TASK_UPPER);
    molt_batch_free(&b);
}

static void test_tasks_errors(void) {
    molt_config c = tasks_config(0, 32);
    molt_data *d = (molt_data *)&c;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(d);
    c.data.tasks = 1u << MOLT_NTASKS;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    c.data.tasks = 1;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, 7), MOLT_ERR_INPUT);
    c.data.source = 9;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    /* seq_len too short for any example. */
    c.data.source = MOLT_DATA_TASKS;
    molt_batch b;
    CU_ASSERT_EQUAL(fill(&c, MOLT_SPLIT_TRAIN, 0, 2, 14, &b), MOLT_ERR_INPUT);
    molt_batch_free(&b);
    CU_ASSERT_EQUAL(fill(&c, MOLT_SPLIT_TRAIN, 0, 2, 15, &b), MOLT_OK);
    molt_batch_free(&b);
}

static void write_shard(const char *name, uint32_t first, size_t n, int wide, char *path,
                        size_t pn) {
    path_in_dir(path, pn, name);
    uint32_t *tok = malloc(n * sizeof *tok);
    for (size_t i = 0; i < n; i++)
        tok[i] = first + (uint32_t)i;
    CU_ASSERT_EQUAL_FATAL(molt_shard_write(path, tok, n, wide), MOLT_OK);
    free(tok);
}

/* Two shards whose tokens are their positions in the concatenation 0..83:
 * windows of T = 8 start at multiples of 8, W = (84 - 1) / 8 = 10. */
static molt_config shard_config(char *a, char *b, size_t pn) {
    write_shard("a.bin", 0, 50, 0, a, pn);
    write_shard("b.bin", 50, 34, 1, b, pn);
    molt_config c;
    memset(&c, 0, sizeof c);
    c.model.vocab_size = 1000;
    c.train.seq_len = 8;
    c.train.seed = 11;
    c.data.source = MOLT_DATA_SHARDS;
    snprintf(c.data.train_path, sizeof c.data.train_path, "%s, %s", a, b);
    return c;
}

static void test_shard_windows(void) {
    char a[128], b2[128];
    molt_config c = shard_config(a, b2, sizeof a);
    enum { T = 8, W = 10, EPOCHS = 3 };
    molt_batch b;
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_TRAIN, 0, W * EPOCHS, T, &b), MOLT_OK);
    int order[EPOCHS][W];
    for (int e = 0; e < EPOCHS; e++) {
        int seen[W] = {0};
        for (int k = 0; k < W; k++) {
            int i = e * W + k;
            const int32_t *in = b.inputs + i * T, *tg = b.targets + i * T;
            CU_ASSERT_EQUAL(b.task[i], -1);
            CU_ASSERT_EQUAL_FATAL(in[0] % T, 0);
            int w = in[0] / T;
            CU_ASSERT_FATAL(w >= 0 && w < W);
            seen[w]++;
            order[e][k] = w;
            for (int t = 0; t < T; t++) {
                CU_ASSERT_EQUAL(in[t], w * T + t);
                CU_ASSERT_EQUAL(tg[t], w * T + t + 1);
            }
        }
        for (int w = 0; w < W; w++)
            CU_ASSERT_EQUAL(seen[w], 1); /* a permutation */
    }
    CU_ASSERT(memcmp(order[0], order[1], sizeof order[0]) ||
              memcmp(order[1], order[2], sizeof order[0]));
    int identity = 1;
    for (int k = 0; k < W; k++)
        identity &= order[0][k] == k;
    CU_ASSERT(!identity);

    /* Independent of the batch split, also across an epoch boundary, and of
     * the order in which batches are asked for (the cached permutation). */
    molt_data *d = NULL;
    molt_batch s;
    CU_ASSERT_EQUAL_FATAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_OK);
    CU_ASSERT_EQUAL_FATAL(molt_batch_alloc(&s, 5, T), MOLT_OK);
    const uint64_t firsts[] = {25, 8, 0, 13, 18, 7};
    for (int k = 0; k < 6; k++) {
        CU_ASSERT_EQUAL_FATAL(molt_data_fill(d, firsts[k], &s), MOLT_OK);
        CU_ASSERT(rows_equal(&b, (int)firsts[k], &s));
    }
    molt_batch_free(&s);
    /* A batch of another seq_len does not match the windows. */
    CU_ASSERT_EQUAL_FATAL(molt_batch_alloc(&s, 1, T + 1), MOLT_OK);
    CU_ASSERT_EQUAL(molt_data_fill(d, 0, &s), MOLT_ERR_INPUT);
    molt_batch_free(&s);
    molt_data_close(d);

    /* Eval falls back to train_path, in its own order. */
    molt_batch e;
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_EVAL, 0, W, T, &e), MOLT_OK);
    CU_ASSERT(!rows_equal(&b, 0, &e));
    molt_batch_free(&e);
    /* eval_path, when set, is used: only the second shard (34 tokens, W = 4). */
    snprintf(c.data.eval_path, sizeof c.data.eval_path, "%s", b2);
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_EVAL, 0, 4, T, &e), MOLT_OK);
    int seen[4] = {0};
    for (int i = 0; i < 4; i++) {
        int w = (e.inputs[i * T] - 50) / T;
        CU_ASSERT_FATAL(w >= 0 && w < 4);
        seen[w]++;
    }
    for (int w = 0; w < 4; w++)
        CU_ASSERT_EQUAL(seen[w], 1);
    molt_batch_free(&e);
    molt_batch_free(&b);
}

static void test_shard_errors(void) {
    char a[128], b2[128], small[128];
    molt_config c = shard_config(a, b2, sizeof a);
    molt_data *d = NULL;
    /* Too few tokens for one window: 8 tokens, T = 8. */
    write_shard("small.bin", 0, 8, 0, small, sizeof small);
    snprintf(c.data.train_path, sizeof c.data.train_path, "%s", small);
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(d);
    c.train.seq_len = 7; /* 9 tokens would be needed for 8; 8 suffice for 7 */
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_OK);
    molt_data_close(d);
    c.train.seq_len = 8;
    /* Tokens beyond the vocabulary (the second shard holds 50..83). */
    snprintf(c.data.train_path, sizeof c.data.train_path, "%s,%s", a, b2);
    c.model.vocab_size = 80;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    c.model.vocab_size = 1000;
    /* Empty list entries, missing files, empty path. */
    snprintf(c.data.train_path, sizeof c.data.train_path, "%s,,%s", a, b2);
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    snprintf(c.data.train_path, sizeof c.data.train_path, "%s,%s/nope.bin", a, dir);
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    c.data.train_path[0] = '\0';
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
    CU_ASSERT_PTR_NULL(d);
}

static void write_text(const char *name, const char *text, char *path, size_t pn) {
    path_in_dir(path, pn, name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

static void test_text_source(void) {
    const char *t1 = "hello world\n", *t2 = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c\n";
    char p1[128], p2[128];
    write_text("one.txt", t1, p1, sizeof p1);
    write_text("two.txt", t2, p2, sizeof p2);
    /* The stream written out by hand: <bos> t1 <eos> <bos> t2 <eos>. */
    int32_t stream[64];
    int n = 0;
    const char *texts[2] = {t1, t2};
    for (int k = 0; k < 2; k++) {
        stream[n++] = MOLT_TOK_BOS;
        for (const char *s = texts[k]; *s; s++)
            stream[n++] = (uint8_t)*s;
        stream[n++] = MOLT_TOK_EOS;
    }
    CU_ASSERT_EQUAL(n, 12 + 14 + 4);
    enum { T = 4 };
    int W = (n - 1) / T;
    molt_config c;
    memset(&c, 0, sizeof c);
    c.model.vocab_size = 259;
    c.train.seq_len = T;
    c.train.seed = 3;
    c.data.source = MOLT_DATA_TEXT;
    snprintf(c.data.train_path, sizeof c.data.train_path, "%s,%s", p1, p2);
    molt_batch b;
    CU_ASSERT_EQUAL_FATAL(fill(&c, MOLT_SPLIT_TRAIN, 0, W, T, &b), MOLT_OK);
    int seen[16] = {0};
    for (int i = 0; i < W; i++) {
        int match = -1;
        for (int w = 0; w < W; w++)
            if (!memcmp(b.inputs + i * T, stream + w * T, T * sizeof(int32_t)) &&
                !memcmp(b.targets + i * T, stream + w * T + 1, T * sizeof(int32_t)))
                match = w;
        CU_ASSERT_FATAL(match >= 0);
        seen[match]++;
        CU_ASSERT_EQUAL(b.task[i], -1);
    }
    for (int w = 0; w < W; w++)
        CU_ASSERT_EQUAL(seen[w], 1);
    molt_batch_free(&b);
    /* The byte tokenizer needs room for <bos>, <eos>, <pad>. */
    c.model.vocab_size = 258;
    molt_data *d = NULL;
    CU_ASSERT_EQUAL(molt_data_open(&d, &c, MOLT_SPLIT_TRAIN), MOLT_ERR_INPUT);
}

static int run(int argc, char **argv) {
    molt_test_case cases[] = {{"batch alloc and free", test_batch_alloc},
                              {"tasks: rows independent of batch split", test_tasks_batch_split},
                              {"tasks: target layout, answer only", test_tasks_layout},
                              {"tasks: target layout, prompt loss", test_tasks_prompt_loss},
                              {"tasks: choice among enabled tasks", test_task_choice},
                              {"tasks: bad configs", test_tasks_errors},
                              {"shards: windows and epoch permutations", test_shard_windows},
                              {"shards: bad inputs", test_shard_errors},
                              {"text: byte-tokenized windows", test_text_source},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "dataset", cases);
}

int main(int argc, char **argv) {
    return molt_run_in_scratch(argc, argv, "dataset", dir, sizeof dir, run);
}
