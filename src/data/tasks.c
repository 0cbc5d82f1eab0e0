/* tasks.c — the built-in task suite (DESIGN §8): synthetic tasks with
 * different skills, generated from a seed, so routing specialisation can be
 * measured with no download.
 *
 * Example i of a task in a split is a pure function of (task, seed, split, i,
 * max_len): its own Philox stream MOLT_RNG_DATA with a = split, b = low 32 bits
 * of i, c = high 32 bits of i + (task + 1) << 24. The dataset's task choice
 * uses c = high 32 bits of i (sub-stream 0), so the two never share a stream
 * for i < 2^56. */
#include <stdio.h>
#include <string.h>

#include "molt/data.h"
#include "molt/err.h"
#include "molt/rng.h"

const char *const molt_task_names[MOLT_NTASKS] = {
    "copy", "reverse", "sort", "add", "mod", "brackets", "count", "upper",
    "revup", "shift", "desc", "title"};

/* Longest prompt or answer text any task writes (caps below keep well under). */
enum { TEXT_MAX = 64 };

typedef struct {
    char prompt[TEXT_MAX], answer[TEXT_MAX];
    int np, na;
} example_text;

typedef void (*task_gen)(molt_rng *r, int n_max, example_text *ex);

/* Item size n (string length, digit count) of each task is drawn from
 * [1, n_max] with n_max = min(cap, (max_len - overhead) / per_item); overhead
 * and per_item bound the whole example (<bos>, <eos> included) from above:
 * total(n) <= overhead + per_item * n. */
typedef struct {
    task_gen gen;
    int overhead, per_item, cap;
} task_spec;

static void put_str(example_text *ex, int answer, const char *s) {
    char *dst = answer ? ex->answer : ex->prompt;
    int *n = answer ? &ex->na : &ex->np;
    size_t len = strlen(s);
    memcpy(dst + *n, s, len);
    *n += (int)len;
}

static void put_char(example_text *ex, int answer, char ch) {
    if (answer)
        ex->answer[ex->na++] = ch;
    else
        ex->prompt[ex->np++] = ch;
}

static int draw_len(molt_rng *r, int n_max) {
    return 1 + (int)molt_rng_below(r, (uint32_t)n_max);
}

static void random_letters(molt_rng *r, char *s, int n) {
    for (int i = 0; i < n; i++)
        s[i] = (char)('a' + molt_rng_below(r, 26));
}

/* "copy xyz=" -> "xyz"; total 8 + 2n. */
static void gen_copy(molt_rng *r, int n_max, example_text *ex) {
    char s[TEXT_MAX];
    int n = draw_len(r, n_max);
    random_letters(r, s, n);
    put_str(ex, 0, "copy ");
    for (int i = 0; i < n; i++)
        put_char(ex, 0, s[i]);
    put_char(ex, 0, '=');
    for (int i = 0; i < n; i++)
        put_char(ex, 1, s[i]);
}

/* "rev xyz=" -> "zyx"; total 7 + 2n. */
static void gen_reverse(molt_rng *r, int n_max, example_text *ex) {
    char s[TEXT_MAX];
    int n = draw_len(r, n_max);
    random_letters(r, s, n);
    put_str(ex, 0, "rev ");
    for (int i = 0; i < n; i++)
        put_char(ex, 0, s[i]);
    put_char(ex, 0, '=');
    for (int i = n - 1; i >= 0; i--)
        put_char(ex, 1, s[i]);
}

/* "sort dbca=" -> "abcd"; total 8 + 2n. */
static void gen_sort(molt_rng *r, int n_max, example_text *ex) {
    char s[TEXT_MAX];
    int n = draw_len(r, n_max);
    random_letters(r, s, n);
    put_str(ex, 0, "sort ");
    for (int i = 0; i < n; i++)
        put_char(ex, 0, s[i]);
    put_char(ex, 0, '=');
    for (char ch = 'a'; ch <= 'z'; ch++)
        for (int i = 0; i < n; i++)
            if (s[i] == ch) put_char(ex, 1, ch);
}

/* A decimal number of exactly `digits` digits (no leading zero unless 0). */
static uint64_t random_number(molt_rng *r, int digits, example_text *ex) {
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        uint32_t d = (i == 0 && digits > 1) ? 1 + molt_rng_below(r, 9) : molt_rng_below(r, 10);
        put_char(ex, 0, (char)('0' + d));
        v = v * 10 + d;
    }
    return v;
}

static void put_number(example_text *ex, uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    put_str(ex, 1, s);
}

/* "add 123+45=" -> "168"; operands of 1..n digits; total 9 + 3n. */
static void gen_add(molt_rng *r, int n_max, example_text *ex) {
    int da = draw_len(r, n_max), db = draw_len(r, n_max);
    put_str(ex, 0, "add ");
    uint64_t a = random_number(r, da, ex);
    put_char(ex, 0, '+');
    uint64_t b = random_number(r, db, ex);
    put_char(ex, 0, '=');
    put_number(ex, a + b);
}

/* "mod 7*9%11=" -> "8": a, b in [0, 10^n), m in [2, 10^n) with n = n_max
 * digits at most; total 9 + 4n. */
static void gen_mod(molt_rng *r, int n_max, example_text *ex) {
    uint32_t lim = 1;
    for (int i = 0; i < n_max; i++)
        lim *= 10;
    uint32_t a = molt_rng_below(r, lim), b = molt_rng_below(r, lim);
    uint32_t m = 2 + molt_rng_below(r, lim - 2);
    char s[48];
    snprintf(s, sizeof s, "mod %u*%u%%%u=", a, b, m);
    put_str(ex, 0, s);
    put_number(ex, (uint64_t)a * b % m);
}

/* "brk (()[])=" -> "yes" / "no". Even lengths only, so parity tells nothing.
 * Half the strings are balanced; the other half are a balanced string with
 * one bracket replaced by another, which is always unbalanced: the open/close
 * pattern fixes which positions pair up, and a substitution either breaks
 * the open/close counts or leaves a mismatched pair. Total 10 + n. */
static void gen_brackets(molt_rng *r, int n_max, example_text *ex) {
    static const char opens[2] = {'(', '['}, closes[2] = {')', ']'}, all[4] = {'(', ')', '[', ']'};
    int n = 2 * draw_len(r, n_max / 2);
    char s[TEXT_MAX], stack[TEXT_MAX];
    int depth = 0;
    for (int i = 0; i < n; i++) {
        int remaining = n - i;
        int do_open = depth == 0 || (remaining > depth && molt_rng_below(r, 2) == 0);
        if (do_open) {
            int k = (int)molt_rng_below(r, 2);
            s[i] = opens[k];
            stack[depth++] = closes[k];
        } else {
            s[i] = stack[--depth];
        }
    }
    int balanced = molt_rng_below(r, 2) == 0;
    if (!balanced) {
        int pos = (int)molt_rng_below(r, (uint32_t)n);
        int k = 0;
        while (all[k] != s[pos])
            k++;
        s[pos] = all[(k + 1 + molt_rng_below(r, 3)) % 4];
    }
    put_str(ex, 0, "brk ");
    for (int i = 0; i < n; i++)
        put_char(ex, 0, s[i]);
    put_char(ex, 0, '=');
    put_str(ex, 1, balanced ? "yes" : "no");
}

/* "cnt a:abaca=" -> "3". Each character is the counted letter with
 * probability about 1/3, so counts spread over 0..n. Total 9 + n + digits(n)
 * <= 11 + n for n < 100. */
static void gen_count(molt_rng *r, int n_max, example_text *ex) {
    int n = draw_len(r, n_max);
    char c = (char)('a' + molt_rng_below(r, 26));
    put_str(ex, 0, "cnt ");
    put_char(ex, 0, c);
    put_char(ex, 0, ':');
    uint64_t count = 0;
    for (int i = 0; i < n; i++) {
        char ch = molt_rng_below(r, 3) == 0 ? c : (char)('a' + molt_rng_below(r, 26));
        count += ch == c;
        put_char(ex, 0, ch);
    }
    put_char(ex, 0, '=');
    put_number(ex, count);
}

/* "up hello=" -> "HELLO"; total 6 + 2n. */
static void gen_upper(molt_rng *r, int n_max, example_text *ex) {
    char s[TEXT_MAX];
    int n = draw_len(r, n_max);
    random_letters(r, s, n);
    put_str(ex, 0, "up ");
    for (int i = 0; i < n; i++)
        put_char(ex, 0, s[i]);
    put_char(ex, 0, '=');
    for (int i = 0; i < n; i++)
        put_char(ex, 1, (char)(s[i] - 'a' + 'A'));
}

/* Letter tasks "TAG xyz=" -> f(xyz): the held-out tasks (data.h) share this
 * frame and differ only in the tag and in f. */
typedef enum { LT_REVUP, LT_SHIFT, LT_DESC, LT_TITLE } letter_map;

/* Total 3 + strlen(tag) + 2n. */
static void gen_letters(molt_rng *r, int n_max, example_text *ex, const char *tag, letter_map f) {
    char s[TEXT_MAX];
    int n = draw_len(r, n_max);
    random_letters(r, s, n);
    put_str(ex, 0, tag);
    for (int i = 0; i < n; i++)
        put_char(ex, 0, s[i]);
    put_char(ex, 0, '=');
    switch (f) {
    case LT_REVUP:
        for (int i = n - 1; i >= 0; i--)
            put_char(ex, 1, (char)(s[i] - 'a' + 'A'));
        break;
    case LT_SHIFT:
        for (int i = 0; i < n; i++)
            put_char(ex, 1, (char)('a' + (s[i] - 'a' + 1) % 26));
        break;
    case LT_DESC:
        for (char ch = 'z'; ch >= 'a'; ch--)
            for (int i = 0; i < n; i++)
                if (s[i] == ch) put_char(ex, 1, ch);
        break;
    case LT_TITLE:
        for (int i = 0; i < n; i++)
            put_char(ex, 1, i == 0 ? (char)(s[i] - 'a' + 'A') : s[i]);
        break;
    }
}

/* "ru xyz=" -> "ZYX"; total 6 + 2n. */
static void gen_revup(molt_rng *r, int n_max, example_text *ex) {
    gen_letters(r, n_max, ex, "ru ", LT_REVUP);
}

/* "sh xyz=" -> "yza"; total 6 + 2n. */
static void gen_shift(molt_rng *r, int n_max, example_text *ex) {
    gen_letters(r, n_max, ex, "sh ", LT_SHIFT);
}

/* "ds dbca=" -> "dcba"; total 6 + 2n. */
static void gen_desc(molt_rng *r, int n_max, example_text *ex) {
    gen_letters(r, n_max, ex, "ds ", LT_DESC);
}

/* "ti hello=" -> "Hello"; total 6 + 2n. */
static void gen_title(molt_rng *r, int n_max, example_text *ex) {
    gen_letters(r, n_max, ex, "ti ", LT_TITLE);
}

static const task_spec specs[MOLT_NTASKS] = {
    [MOLT_TASK_COPY] = {gen_copy, 8, 2, 12},    [MOLT_TASK_REVERSE] = {gen_reverse, 7, 2, 12},
    [MOLT_TASK_SORT] = {gen_sort, 8, 2, 12},    [MOLT_TASK_ADD] = {gen_add, 9, 3, 6},
    [MOLT_TASK_MOD] = {gen_mod, 9, 4, 2},       [MOLT_TASK_BRACKETS] = {gen_brackets, 10, 1, 12},
    [MOLT_TASK_COUNT] = {gen_count, 11, 1, 12}, [MOLT_TASK_UPPER] = {gen_upper, 6, 2, 12},
    [MOLT_TASK_REVUP] = {gen_revup, 6, 2, 12},  [MOLT_TASK_SHIFT] = {gen_shift, 6, 2, 12},
    [MOLT_TASK_DESC] = {gen_desc, 6, 2, 12},    [MOLT_TASK_TITLE] = {gen_title, 6, 2, 12},
};

int molt_task_example(int task, uint64_t seed, int split, uint64_t index, int32_t *tokens,
                      int max_len, int *len, int *prompt_len) {
    int rc = MOLT_OK;
    if (task < 0 || task >= MOLT_NTASKS)
        MOLT_FAIL(MOLT_ERR_INPUT, "task id %d is not one of the %d built-in tasks", task,
                  MOLT_NTASKS);
    if (max_len < 16)
        MOLT_FAIL(MOLT_ERR_INPUT, "task examples need max_len >= 16 tokens, got %d", max_len);
    const task_spec *sp = &specs[task];
    int n_max = (max_len - sp->overhead) / sp->per_item;
    if (n_max > sp->cap) n_max = sp->cap;

    molt_rng r;
    molt_rng_init(&r, seed, MOLT_RNG_DATA, (uint32_t)split, (uint32_t)index,
                  (uint32_t)(index >> 32) + ((uint32_t)(task + 1) << 24));
    example_text ex = {.np = 0, .na = 0};
    sp->gen(&r, n_max, &ex);

    int total = 2 + ex.np + ex.na;
    if (total > max_len)
        MOLT_FAIL(MOLT_ERR_INTERNAL, "task %s: example of %d tokens exceeds max_len %d",
                  molt_task_names[task], total, max_len);
    int k = 0;
    tokens[k++] = MOLT_TOK_BOS;
    for (int i = 0; i < ex.np; i++)
        tokens[k++] = (uint8_t)ex.prompt[i];
    for (int i = 0; i < ex.na; i++)
        tokens[k++] = (uint8_t)ex.answer[i];
    tokens[k++] = MOLT_TOK_EOS;
    *len = k;
    *prompt_len = 1 + ex.np;
done:
    return rc;
}
