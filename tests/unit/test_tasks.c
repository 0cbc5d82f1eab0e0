/* test_tasks.c — the built-in task suite: every answer recomputed from the
 * prompt by an independent checker, determinism, variety, splits, lengths. */
#include <stdio.h>
#include <string.h>

#include "molt/data.h"
#include "molt/err.h"
#include "testutil.h"

enum { MAXLEN = 128 };

typedef struct {
    char prompt[MAXLEN], answer[MAXLEN]; /* NUL-terminated bytes */
    int len, prompt_len;
} parsed;

/* Split an example into prompt and answer text, checking the frame. */
static int parse_example(const int32_t *tok, int len, int prompt_len, parsed *p) {
    if (len < 4 || prompt_len < 2 || prompt_len >= len - 1) return 0;
    if (tok[0] != MOLT_TOK_BOS || tok[len - 1] != MOLT_TOK_EOS) return 0;
    for (int i = 1; i < len - 1; i++)
        if (tok[i] < 0 || tok[i] > 255 || tok[i] == 0) return 0;
    int np = prompt_len - 1, na = len - 1 - prompt_len;
    for (int i = 0; i < np; i++)
        p->prompt[i] = (char)tok[1 + i];
    p->prompt[np] = '\0';
    for (int i = 0; i < na; i++)
        p->answer[i] = (char)tok[prompt_len + i];
    p->answer[na] = '\0';
    p->len = len;
    p->prompt_len = prompt_len;
    return p->prompt[np - 1] == '=';
}

static int all_lower(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < 'a' || s[i] > 'z') return 0;
    return n > 0;
}

/* Body of "KEY body=": returns body and its length, or NULL. */
static const char *body(const char *prompt, const char *key, size_t *n) {
    size_t k = strlen(key), len = strlen(prompt);
    if (strncmp(prompt, key, k) || len < k + 1 || prompt[len - 1] != '=') return NULL;
    *n = len - k - 1;
    return prompt + k;
}

static int is_balanced(const char *s, size_t n) {
    char stack[MAXLEN];
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '(' || ch == '[') {
            stack[depth++] = ch;
        } else if (ch == ')' || ch == ']') {
            if (depth == 0) return 0;
            char want = ch == ')' ? '(' : '[';
            if (stack[--depth] != want) return 0;
        } else {
            return -1;
        }
    }
    return depth == 0;
}

static int parse_uint(const char *s, size_t n, unsigned long long *v) {
    if (n == 0 || n > 18 || (n > 1 && s[0] == '0')) return 0;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        *v = *v * 10 + (unsigned long long)(s[i] - '0');
    }
    return 1;
}

/* The n lowercase letters of s, sorted (descending if desc), into out. */
static void sorted_letters(const char *s, size_t n, int desc, char *out) {
    int hist[26] = {0};
    for (size_t i = 0; i < n; i++)
        hist[s[i] - 'a']++;
    size_t k = 0;
    for (int j = 0; j < 26; j++) {
        const int c = desc ? 25 - j : j;
        while (hist[c]--)
            out[k++] = (char)('a' + c);
    }
    out[k] = '\0';
}

/* Recompute the answer of `task` from the prompt alone; 1 if it matches. */
static int check_answer(int task, const parsed *p) {
    char want[MAXLEN];
    size_t n;
    const char *s;
    switch (task) {
    case MOLT_TASK_COPY:
        if (!(s = body(p->prompt, "copy ", &n)) || !all_lower(s, n)) return 0;
        memcpy(want, s, n);
        want[n] = '\0';
        break;
    case MOLT_TASK_REVERSE:
        if (!(s = body(p->prompt, "rev ", &n)) || !all_lower(s, n)) return 0;
        for (size_t i = 0; i < n; i++)
            want[i] = s[n - 1 - i];
        want[n] = '\0';
        break;
    case MOLT_TASK_SORT:
        if (!(s = body(p->prompt, "sort ", &n)) || !all_lower(s, n)) return 0;
        sorted_letters(s, n, 0, want);
        break;
    case MOLT_TASK_ADD: {
        if (!(s = body(p->prompt, "add ", &n))) return 0;
        const char *plus = memchr(s, '+', n);
        unsigned long long a, b;
        if (!plus || !parse_uint(s, (size_t)(plus - s), &a) ||
            !parse_uint(plus + 1, n - (size_t)(plus - s) - 1, &b))
            return 0;
        snprintf(want, sizeof want, "%llu", a + b);
        break;
    }
    case MOLT_TASK_MOD: {
        unsigned a, b, m;
        int used = 0;
        if (sscanf(p->prompt, "mod %u*%u%%%u=%n", &a, &b, &m, &used) != 3 ||
            used != (int)strlen(p->prompt) || m < 2 || a > 99 || b > 99 || m > 99)
            return 0;
        snprintf(want, sizeof want, "%u", a * b % m);
        break;
    }
    case MOLT_TASK_BRACKETS: {
        if (!(s = body(p->prompt, "brk ", &n)) || n == 0) return 0;
        int bal = is_balanced(s, n);
        if (bal < 0) return 0;
        snprintf(want, sizeof want, "%s", bal ? "yes" : "no");
        break;
    }
    case MOLT_TASK_COUNT: {
        if (!(s = body(p->prompt, "cnt ", &n)) || n < 3 || s[1] != ':') return 0;
        if (!all_lower(s, 1) || !all_lower(s + 2, n - 2)) return 0;
        int count = 0;
        for (size_t i = 2; i < n; i++)
            count += s[i] == s[0];
        snprintf(want, sizeof want, "%d", count);
        break;
    }
    case MOLT_TASK_UPPER:
        if (!(s = body(p->prompt, "up ", &n)) || !all_lower(s, n)) return 0;
        for (size_t i = 0; i < n; i++)
            want[i] = (char)(s[i] - 'a' + 'A');
        want[n] = '\0';
        break;
    case MOLT_TASK_REVUP:
        if (!(s = body(p->prompt, "ru ", &n)) || !all_lower(s, n)) return 0;
        for (size_t i = 0; i < n; i++)
            want[i] = (char)(s[n - 1 - i] - 'a' + 'A');
        want[n] = '\0';
        break;
    case MOLT_TASK_SHIFT:
        if (!(s = body(p->prompt, "sh ", &n)) || !all_lower(s, n)) return 0;
        for (size_t i = 0; i < n; i++)
            want[i] = s[i] == 'z' ? 'a' : (char)(s[i] + 1);
        want[n] = '\0';
        break;
    case MOLT_TASK_DESC:
        if (!(s = body(p->prompt, "ds ", &n)) || !all_lower(s, n)) return 0;
        sorted_letters(s, n, 1, want);
        break;
    case MOLT_TASK_TITLE:
        if (!(s = body(p->prompt, "ti ", &n)) || !all_lower(s, n)) return 0;
        memcpy(want, s, n);
        want[0] = (char)(want[0] - 'a' + 'A');
        want[n] = '\0';
        break;
    default:
        return 0;
    }
    return strcmp(want, p->answer) == 0;
}

static int gen(int task, uint64_t seed, int split, uint64_t index, int max_len, int32_t *tok,
               parsed *p) {
    int len = -1, prompt_len = -1;
    for (int i = 0; i <= MAXLEN; i++)
        tok[i] = -7;
    if (molt_task_example(task, seed, split, index, tok, max_len, &len, &prompt_len) != MOLT_OK)
        return 0;
    if (len > max_len || tok[max_len] != -7) return 0; /* wrote past max_len */
    return parse_example(tok, len, prompt_len, p);
}

static void test_names(void) {
    CU_ASSERT(MOLT_NTASKS >= 12);
    for (int t = 0; t < MOLT_NTASKS; t++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(molt_task_names[t]);
        for (int u = 0; u < t; u++)
            CU_ASSERT(strcmp(molt_task_names[t], molt_task_names[u]));
    }
    CU_ASSERT_STRING_EQUAL(molt_task_names[MOLT_TASK_COPY], "copy");
    CU_ASSERT_STRING_EQUAL(molt_task_names[MOLT_TASK_BRACKETS], "brackets");
    CU_ASSERT_STRING_EQUAL(molt_task_names[MOLT_TASK_REVUP], "revup");
    CU_ASSERT_STRING_EQUAL(molt_task_names[MOLT_TASK_TITLE], "title");
}

static void test_answers_correct(void) {
    int32_t tok[MAXLEN + 1];
    parsed p;
    const int lens[] = {16, 33, 65};
    for (int t = 0; t < MOLT_NTASKS; t++) {
        for (int li = 0; li < 3; li++) {
            int bad = 0, yes = 0, longest = 0;
            for (uint64_t i = 0; i < 500; i++) {
                int ok =
                    gen(t, 1234, MOLT_SPLIT_TRAIN, i, lens[li], tok, &p) && check_answer(t, &p);
                if (!ok && bad++ == 0)
                    fprintf(stderr, "task %s max_len %d index %llu: '%s' -> '%s' is wrong\n",
                            molt_task_names[t], lens[li], (unsigned long long)i, p.prompt,
                            p.answer);
                yes += !strcmp(p.answer, "yes");
                if (p.len > longest) longest = p.len;
            }
            CU_ASSERT_EQUAL(bad, 0);
            /* brackets: half balanced. */
            if (t == MOLT_TASK_BRACKETS) CU_ASSERT(yes > 200 && yes < 300);
            /* Lengths use the room there is: the longest is close to max_len
             * (or to the task's cap for the larger budgets). */
            CU_ASSERT(longest >= (lens[li] < 20 ? lens[li] - 4 : 13));
        }
    }
}

static void test_count_spread(void) {
    /* The count task is not degenerate: answers other than "0" are common. */
    int32_t tok[MAXLEN + 1];
    parsed p;
    int zero = 0;
    for (uint64_t i = 0; i < 500; i++) {
        CU_ASSERT_FATAL(gen(MOLT_TASK_COUNT, 9, MOLT_SPLIT_TRAIN, i, 65, tok, &p));
        zero += !strcmp(p.answer, "0");
    }
    CU_ASSERT(zero < 150);
}

static void test_deterministic(void) {
    int32_t a[MAXLEN + 1], b[MAXLEN + 1];
    parsed pa, pb;
    for (int t = 0; t < MOLT_NTASKS; t++)
        for (uint64_t i = 0; i < 50; i++) {
            uint64_t idx = i * 7919 + ((uint64_t)i << 40);
            CU_ASSERT_FATAL(gen(t, 77, MOLT_SPLIT_TRAIN, idx, 40, a, &pa));
            CU_ASSERT_FATAL(gen(t, 77, MOLT_SPLIT_TRAIN, idx, 40, b, &pb));
            CU_ASSERT_EQUAL(pa.len, pb.len);
            CU_ASSERT_EQUAL(pa.prompt_len, pb.prompt_len);
            CU_ASSERT(memcmp(a, b, sizeof a) == 0);
        }
}

/* Fraction of pairs whose examples are identical. */
static double same_fraction(int task, int split_b, uint64_t seed_b, uint64_t offset) {
    int32_t a[MAXLEN + 1], b[MAXLEN + 1];
    parsed pa, pb;
    int same = 0, n = 400;
    for (uint64_t i = 0; i < (uint64_t)n; i++) {
        CU_ASSERT_FATAL(gen(task, 5, MOLT_SPLIT_TRAIN, i, 65, a, &pa));
        CU_ASSERT_FATAL(gen(task, seed_b, split_b, i + offset, 65, b, &pb));
        same += pa.len == pb.len && !memcmp(a, b, (size_t)pa.len * sizeof *a);
    }
    return (double)same / n;
}

static void test_variety(void) {
    for (int t = 0; t < MOLT_NTASKS; t++) {
        double idx = same_fraction(t, MOLT_SPLIT_TRAIN, 5, 1);
        double split = same_fraction(t, MOLT_SPLIT_EVAL, 5, 0);
        double seed = same_fraction(t, MOLT_SPLIT_TRAIN, 6, 0);
        if (idx >= 0.1 || split >= 0.1 || seed >= 0.1)
            fprintf(stderr, "task %s: same fraction index %.3f split %.3f seed %.3f\n",
                    molt_task_names[t], idx, split, seed);
        CU_ASSERT(idx < 0.1);
        CU_ASSERT(split < 0.1);
        CU_ASSERT(seed < 0.1);
    }
}

static void test_bad_arguments(void) {
    int32_t tok[MAXLEN];
    int len, pl;
    CU_ASSERT_EQUAL(molt_task_example(-1, 1, 0, 0, tok, 32, &len, &pl), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_task_example(MOLT_NTASKS, 1, 0, 0, tok, 32, &len, &pl), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_task_example(0, 1, 0, 0, tok, 15, &len, &pl), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(molt_task_example(0, 1, 0, 0, tok, 16, &len, &pl), MOLT_OK);
}

int main(int argc, char **argv) {
    molt_test_case cases[] = {{"names", test_names},
                              {"answers recomputed from prompts, all fit", test_answers_correct},
                              {"count answers spread", test_count_spread},
                              {"deterministic", test_deterministic},
                              {"index, split and seed change examples", test_variety},
                              {"bad task id and max_len", test_bad_arguments},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "tasks", cases);
}
