/* test_config.c — INI parsing, --set, validation, messages and round trip.
 *
 * Each case writes its INI text to a file in a fresh mkdtemp() directory,
 * loads it with stderr redirected to another file there, and checks the
 * return code (every input error is exactly MOLT_ERR_INPUT) and the message,
 * which must name FILE:LINE and the key. */
#define _POSIX_C_SOURCE 200809L
#include "molt/config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "molt/data.h"
#include "molt/err.h"
#include "testutil.h"

typedef struct {
    char dir[64], ini[128], log[128];
    char err[32768]; /* stderr of the last call (or the key list) */
    int saved_fd;
} fixture;

static void fx_open(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/molt_test_config_XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(fx->dir));
    snprintf(fx->ini, sizeof fx->ini, "%s/run.ini", fx->dir);
    snprintf(fx->log, sizeof fx->log, "%s/stderr.txt", fx->dir);
}

static void fx_close(fixture *fx) {
    remove(fx->ini);
    remove(fx->log);
    rmdir(fx->dir);
}

static void capture_begin(fixture *fx) {
    fflush(stderr);
    fx->saved_fd = dup(2);
    FILE *f = fopen(fx->log, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    dup2(fileno(f), 2);
    fclose(f);
}

static void capture_end(fixture *fx) {
    fflush(stderr);
    dup2(fx->saved_fd, 2);
    close(fx->saved_fd);
    FILE *f = fopen(fx->log, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t n = fread(fx->err, 1, sizeof fx->err - 1, f);
    fx->err[n] = '\0';
    fclose(f);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* Load `text` as fx->ini on top of `c` (defaults if NULL), capturing stderr. */
static int fx_load(fixture *fx, const char *text, molt_config *c) {
    molt_config local;
    if (!c) {
        molt_config_defaults(&local);
        c = &local;
    }
    write_file(fx->ini, text);
    capture_begin(fx);
    int rc = molt_config_load(c, fx->ini);
    capture_end(fx);
    return rc;
}

static int fx_set(fixture *fx, molt_config *c, const char *assignment) {
    capture_begin(fx);
    int rc = molt_config_set(c, assignment);
    capture_end(fx);
    return rc;
}

static int fx_validate(fixture *fx, const molt_config *c) {
    capture_begin(fx);
    int rc = molt_config_validate(c);
    capture_end(fx);
    return rc;
}

/* stderr holds "<ini>:<line>: <rest>". */
static int err_at(const fixture *fx, int line, const char *rest) {
    char want[512];
    snprintf(want, sizeof want, "%s:%d: %s", fx->ini, line, rest);
    return strstr(fx->err, want) != NULL;
}

static int err_has(const fixture *fx, const char *s) {
    return strstr(fx->err, s) != NULL;
}

/* One bad value for one key, on line 2 of a file: returns rc, keeps stderr. */
static int load_one(fixture *fx, const char *section, const char *line) {
    char text[1024];
    snprintf(text, sizeof text, "[%s]\n%s\n", section, line);
    return fx_load(fx, text, NULL);
}

static void test_defaults_validate(void) {
    fixture fx;
    fx_open(&fx);
    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_OK);
    CU_ASSERT_STRING_EQUAL(fx.err, "");
    CU_ASSERT_EQUAL(c.model.mode, MOLT_MODE_FULL);
    CU_ASSERT_EQUAL(c.model.vocab_size, 259);
    CU_ASSERT_EQUAL(c.model.d_model, 64);
    CU_ASSERT_DOUBLE_EQUAL(c.model.norm_eps, 1e-5, 0);
    CU_ASSERT_EQUAL(c.model.tie_embeddings, 1);
    CU_ASSERT_EQUAL(c.lora.targets, 0u);
    CU_ASSERT_EQUAL(c.train.schedule, MOLT_SCHED_COSINE);
    CU_ASSERT_DOUBLE_EQUAL(c.train.lr, 1e-3, 0);
    CU_ASSERT_DOUBLE_EQUAL(c.train.beta2, 0.95, 0);
    CU_ASSERT_EQUAL(c.train.seed, 1u);
    CU_ASSERT_EQUAL(c.data.tasks, (1u << MOLT_NTASKS) - 1);
    CU_ASSERT_EQUAL(c.eval.tasks, (1u << MOLT_NTASKS) - 1);
    CU_ASSERT_STRING_EQUAL(c.checkpoint.dir, "checkpoints");
    CU_ASSERT_EQUAL(c.checkpoint.keep, 3);
    CU_ASSERT_EQUAL(c.log.every, 10);
    CU_ASSERT_STRING_EQUAL(c.source, "");
    fx_close(&fx);
}

static void test_good_file_sets_every_type(void) {
    fixture fx;
    fx_open(&fx);
    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL(fx_load(&fx,
                            "\xEF\xBB\xBF; comment after a BOM\n"
                            "# another comment\n"
                            "[model]\n"
                            "mode = peft\n"
                            "  d_model = 128   ; inline comment\n"
                            "n_heads = 8\n"
                            "n_kv_heads=2\n"
                            "rope_theta = 5e5\n"
                            "tie_embeddings = no\n"
                            "init_from = /data/base model.h5\r\n"
                            "\n"
                            "[lora]\n"
                            "targets = q_proj, v_proj ,down_proj\n"
                            "alpha = 32\n"
                            "[train]\n"
                            "steps = 2000000000\n"
                            "schedule = linear\n"
                            "lr = 3e-4\n"
                            "lr = 2e-4\n" /* duplicate: last wins */
                            "seed = 18446744073709551615\n"
                            "[data]\n"
                            "source = shards\n"
                            "train_path = train.bin\n"
                            "tasks = add, mod\n"
                            "prompt_loss = on\n"
                            "[eval]\n"
                            "tasks = none\n"
                            "[log]\n"
                            "run_dir: runs/x\n",
                            &c),
                    MOLT_OK);
    CU_ASSERT_STRING_EQUAL(fx.err, "");
    CU_ASSERT_EQUAL(c.model.mode, MOLT_MODE_PEFT);
    CU_ASSERT_EQUAL(c.model.d_model, 128);
    CU_ASSERT_EQUAL(c.model.n_heads, 8);
    CU_ASSERT_EQUAL(c.model.n_kv_heads, 2);
    CU_ASSERT_DOUBLE_EQUAL(c.model.rope_theta, 5e5, 0);
    CU_ASSERT_EQUAL(c.model.tie_embeddings, 0);
    CU_ASSERT_STRING_EQUAL(c.model.init_from, "/data/base model.h5");
    CU_ASSERT_EQUAL(c.lora.targets,
                    (1u << MOLT_PROJ_Q) | (1u << MOLT_PROJ_V) | (1u << MOLT_PROJ_DOWN));
    CU_ASSERT_DOUBLE_EQUAL(c.lora.alpha, 32, 0);
    CU_ASSERT_EQUAL(c.train.steps, 2000000000);
    CU_ASSERT_EQUAL(c.train.schedule, MOLT_SCHED_LINEAR);
    CU_ASSERT_DOUBLE_EQUAL(c.train.lr, 2e-4, 0);
    CU_ASSERT_EQUAL(c.train.seed, UINT64_MAX);
    CU_ASSERT_EQUAL(c.data.source, MOLT_DATA_SHARDS);
    CU_ASSERT_STRING_EQUAL(c.data.train_path, "train.bin");
    CU_ASSERT_EQUAL(c.data.tasks, (1u << MOLT_TASK_ADD) | (1u << MOLT_TASK_MOD));
    CU_ASSERT_EQUAL(c.data.prompt_loss, 1);
    CU_ASSERT_EQUAL(c.eval.tasks, 0u);
    CU_ASSERT_STRING_EQUAL(c.log.run_dir, "runs/x");
    CU_ASSERT_STRING_EQUAL(c.source, fx.ini);
    /* untouched keys keep their defaults */
    CU_ASSERT_EQUAL(c.model.n_layers, 2);
    CU_ASSERT_EQUAL(c.train.batch_size, 16);
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_OK);
    fx_close(&fx);
}

static void test_unknown_section_and_key(void) {
    fixture fx;
    fx_open(&fx);
    /* An empty unknown section is still reported, on its own line. */
    CU_ASSERT_EQUAL(fx_load(&fx, "[train]\nlr = 0.1\n\n[trian]\n", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 4,
                     "[trian]: unknown section (allowed: model, lora, moe, train, data, "
                     "parallel, factor, checkpoint, eval, log)"));
    CU_ASSERT_EQUAL(fx_load(&fx, "[train]\nsteps = 5\nlrr = 0.1\n", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 3, "train.lrr: unknown key (allowed in [train]: steps, batch_size,"));
    CU_ASSERT(err_has(&fx, "grad_clip, seed)"));
    CU_ASSERT_EQUAL(fx_load(&fx, "lr = 0.1\n", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 1, "lr: key outside any section"));
    fx_close(&fx);
}

static void test_syntax_errors(void) {
    fixture fx;
    fx_open(&fx);
    CU_ASSERT_EQUAL(fx_load(&fx, "[train]\nlr 0.1\nsteps = x\n", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "syntax error (expected [section] or key = value)"));
    CU_ASSERT(!err_has(&fx, "steps")); /* stops at the first error */
    CU_ASSERT_EQUAL(fx_load(&fx, "[train\nlr = 0.1\n", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 1, "syntax error"));
    CU_ASSERT_EQUAL(fx_load(&fx, "[train] junk\n", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 1, "syntax error"));
    CU_ASSERT_EQUAL(fx_load(&fx, "[train] ; comment\nlr = 0.1\n", NULL), MOLT_OK);
    fx_close(&fx);
}

static void test_bad_numbers(void) {
    fixture fx;
    fx_open(&fx);
    CU_ASSERT_EQUAL(load_one(&fx, "train", "steps = 12x"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.steps: expected an integer, got \"12x\""));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "steps = 1.5"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "train", "steps ="), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.steps: expected an integer, got \"\""));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "steps = 99999999999"), MOLT_ERR_INPUT);
    CU_ASSERT(
        err_at(&fx, 2, "train.steps: 99999999999 is out of range (allowed: 0 .. 2000000000)"));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "steps = 99999999999999999999999"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.steps: 99999999999999999999999 is out of range"));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "seed = -1"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.seed: expected a non-negative integer, got \"-1\""));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "seed = 18446744073709551616"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = abc"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.lr: expected a number, got \"abc\""));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = 0.1.2"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = nan"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.lr: expected a finite number"));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = 1e999"), MOLT_ERR_INPUT);
    fx_close(&fx);
}

static void test_ranges(void) {
    fixture fx;
    fx_open(&fx);
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = 50"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.lr: 50 is out of range (allowed: 0 .. 10)"));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = -0.001"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = 10"), MOLT_OK); /* closed ends included */
    CU_ASSERT_EQUAL(load_one(&fx, "train", "lr = 0"), MOLT_OK);
    CU_ASSERT_EQUAL(load_one(&fx, "model", "vocab_size = 258"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "model", "vocab_size = 16777217"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "model", "vocab_size = 16777216"), MOLT_OK);
    /* exclusive bounds hit exactly */
    CU_ASSERT_EQUAL(load_one(&fx, "model", "norm_eps = 0"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "model.norm_eps: 0 is out of range (allowed: 0 .. 1, excluding 0)"));
    CU_ASSERT_EQUAL(load_one(&fx, "model", "norm_eps = 1"), MOLT_OK);
    CU_ASSERT_EQUAL(load_one(&fx, "train", "beta1 = 1"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "train.beta1: 1 is out of range (allowed: 0 .. 1, excluding 1)"));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "beta1 = 0"), MOLT_OK);
    CU_ASSERT_EQUAL(load_one(&fx, "lora", "dropout = 1"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "parallel", "a2a_chunks = 65"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "log", "every = 0"), MOLT_ERR_INPUT);
    fx_close(&fx);
}

static void test_enums_and_lists(void) {
    fixture fx;
    fx_open(&fx);
    CU_ASSERT_EQUAL(load_one(&fx, "model", "mode = fulll"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "model.mode: unknown value \"fulll\" (allowed: full, peft)"));
    CU_ASSERT_EQUAL(load_one(&fx, "train", "schedule = step"), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "(allowed: cosine, linear, constant)"));
    CU_ASSERT_EQUAL(load_one(&fx, "lora", "targets = q_proj, qproj"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2,
                     "lora.targets: unknown name \"qproj\" (allowed: q_proj, k_proj, "
                     "v_proj, o_proj, gate_proj, up_proj, down_proj, all, none)"));
    CU_ASSERT_EQUAL(load_one(&fx, "lora", "targets = q_proj,,v_proj"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "lora.targets: unknown name \"\""));
    CU_ASSERT_EQUAL(load_one(&fx, "lora", "targets = q_proj,"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(load_one(&fx, "data", "tasks = copy, sorting"), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "(allowed: copy, reverse, sort, add, mod, brackets, count, upper, "
                           "revup, shift, desc, title, all, none)"));

    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL(fx_load(&fx, "[lora]\ntargets = all\n", &c), MOLT_OK);
    CU_ASSERT_EQUAL(c.lora.targets, (1u << MOLT_NPROJ) - 1);
    CU_ASSERT_EQUAL(fx_load(&fx, "[lora]\ntargets =\n", &c), MOLT_OK);
    CU_ASSERT_EQUAL(c.lora.targets, 0u);
    CU_ASSERT_EQUAL(fx_load(&fx, "[lora]\ntargets = up_proj,none\n", &c), MOLT_OK);
    CU_ASSERT_EQUAL(c.lora.targets, 1u << MOLT_PROJ_UP);
    CU_ASSERT_EQUAL(fx_load(&fx, "[data]\nsource = text\n", &c), MOLT_OK);
    CU_ASSERT_EQUAL(c.data.source, MOLT_DATA_TEXT);
    fx_close(&fx);
}

static void test_bool_spellings(void) {
    fixture fx;
    fx_open(&fx);
    const char *yes[] = {"true", "1", "yes", "on", "True", "YES"};
    const char *no[] = {"false", "0", "no", "off", "FALSE", "Off"};
    for (int i = 0; i < 6; i++) {
        molt_config c;
        char line[64];
        molt_config_defaults(&c);
        c.data.prompt_loss = 0;
        snprintf(line, sizeof line, "[data]\nprompt_loss = %s\n", yes[i]);
        CU_ASSERT_EQUAL(fx_load(&fx, line, &c), MOLT_OK);
        CU_ASSERT_EQUAL(c.data.prompt_loss, 1);
        snprintf(line, sizeof line, "[data]\nprompt_loss = %s\n", no[i]);
        CU_ASSERT_EQUAL(fx_load(&fx, line, &c), MOLT_OK);
        CU_ASSERT_EQUAL(c.data.prompt_loss, 0);
    }
    CU_ASSERT_EQUAL(load_one(&fx, "data", "prompt_loss = maybe"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "data.prompt_loss: expected true or false, got \"maybe\""));
    CU_ASSERT_EQUAL(load_one(&fx, "data", "prompt_loss = 2"), MOLT_ERR_INPUT);
    fx_close(&fx);
}

static void test_strings(void) {
    fixture fx;
    fx_open(&fx);
    CU_ASSERT_EQUAL(load_one(&fx, "model", "init_from = a;b"), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 2, "model.init_from: \"a;b\" cannot be written back"));
    CU_ASSERT_EQUAL(load_one(&fx, "log", "run_dir = runs#1"), MOLT_ERR_INPUT);
    molt_config c;
    molt_config_defaults(&c);
    char set[MOLT_PATH_MAX + 64];
    /* strings stop at 160 characters so the resolved config line stays under
     * inih's 199-character line limit (it must load back) */
    snprintf(set, sizeof set, "model.init_from=%0*d", 161, 0);
    CU_ASSERT_EQUAL(fx_set(&fx, &c, set), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "--set: model.init_from: value is 161 characters long (limit 160)"));
    snprintf(set, sizeof set, "model.init_from=%0*d", 160, 0);
    CU_ASSERT_EQUAL(fx_set(&fx, &c, set), MOLT_OK);
    CU_ASSERT_EQUAL(strlen(c.model.init_from), 160);
    char *text = molt_config_to_ini(&c);
    molt_config back;
    molt_config_defaults(&back);
    CU_ASSERT_EQUAL(molt_config_load_string(&back, text, "roundtrip"), MOLT_OK);
    CU_ASSERT_STRING_EQUAL(back.model.init_from, c.model.init_from);
    free(text);
    CU_ASSERT_EQUAL(fx_set(&fx, &c, "checkpoint.dir=a\tb"), MOLT_ERR_INPUT);
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_OK);
    fx_close(&fx);
}

static void test_set_overrides(void) {
    fixture fx;
    fx_open(&fx);
    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL(fx_load(&fx, "[train]\nlr = 0.01\nsteps = 7\n", &c), MOLT_OK);
    CU_ASSERT_EQUAL(fx_set(&fx, &c, "train.lr=0.5"), MOLT_OK);
    CU_ASSERT_EQUAL(fx_set(&fx, &c, " model.mode = peft "), MOLT_OK);
    CU_ASSERT_EQUAL(fx_set(&fx, &c, "lora.targets=q_proj,v_proj"), MOLT_OK);
    CU_ASSERT_DOUBLE_EQUAL(c.train.lr, 0.5, 0);
    CU_ASSERT_EQUAL(c.train.steps, 7);
    CU_ASSERT_EQUAL(c.model.mode, MOLT_MODE_PEFT);
    CU_ASSERT_EQUAL(c.lora.targets, (1u << MOLT_PROJ_Q) | (1u << MOLT_PROJ_V));

    CU_ASSERT_EQUAL(fx_set(&fx, &c, "train.lr=abc"), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "--set: train.lr: expected a number, got \"abc\""));
    CU_ASSERT_DOUBLE_EQUAL(c.train.lr, 0.5, 0); /* a failed --set changes nothing */
    CU_ASSERT_EQUAL(fx_set(&fx, &c, "train.lrr=1"), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "--set: train.lrr: unknown key (allowed in [train]:"));
    CU_ASSERT_EQUAL(fx_set(&fx, &c, "trian.lr=1"), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "--set: [trian]: unknown section"));
    const char *bad[] = {"foo", "train.lr", "lr=1", "=1", ".lr=1", "train.=1", "", "a=b.c"};
    for (int i = 0; i < 8; i++) {
        char want[64];
        snprintf(want, sizeof want, "--set \"%s\": expected section.key=value", bad[i]);
        CU_ASSERT_EQUAL(fx_set(&fx, &c, bad[i]), MOLT_ERR_INPUT);
        CU_ASSERT(err_has(&fx, want));
    }
    fx_close(&fx);
}

/* Apply `assignment` to defaults and validate: returns rc, keeps stderr. */
static int validate_with(fixture *fx, const char *a1, const char *a2) {
    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL(molt_config_set(&c, a1), MOLT_OK);
    if (a2) CU_ASSERT_EQUAL(molt_config_set(&c, a2), MOLT_OK);
    return fx_validate(fx, &c);
}

static void test_cross_key_validation(void) {
    fixture fx;
    fx_open(&fx);
    CU_ASSERT_EQUAL(validate_with(&fx, "model.n_heads=5", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "config: model.d_model (64) is not divisible by model.n_heads (5)"));
    CU_ASSERT_EQUAL(validate_with(&fx, "model.d_model=24", "model.n_heads=8"), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "must be even"));
    CU_ASSERT_EQUAL(validate_with(&fx, "model.n_kv_heads=3", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "model.n_heads (4) is not divisible by model.n_kv_heads (3)"));
    CU_ASSERT_EQUAL(validate_with(&fx, "train.seq_len=512", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "train.seq_len (512) exceeds model.max_seq_len (256)"));
    CU_ASSERT_EQUAL(validate_with(&fx, "train.min_lr=0.01", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "train.min_lr (0.01) exceeds train.lr (0.001)"));
    CU_ASSERT_EQUAL(validate_with(&fx, "train.warmup=101", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "train.warmup (101) exceeds train.steps (100)"));
    CU_ASSERT_EQUAL(validate_with(&fx, "train.warmup=101", "train.steps=0"), MOLT_OK);
    CU_ASSERT_EQUAL(validate_with(&fx, "model.mode=peft", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "lora.targets or lora.train_norms"));
    CU_ASSERT_EQUAL(validate_with(&fx, "model.mode=peft", "lora.train_norms=true"), MOLT_OK);
    CU_ASSERT_EQUAL(validate_with(&fx, "lora.targets=all", "lora.r=65"), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "lora.r (65) exceeds min(model.d_model, model.d_ff) = 64"));
    CU_ASSERT_EQUAL(validate_with(&fx, "lora.targets=all", "lora.r=64"), MOLT_OK);
    CU_ASSERT_EQUAL(validate_with(&fx, "data.source=shards", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "data.source = shards needs data.train_path"));
    CU_ASSERT_EQUAL(validate_with(&fx, "data.source=text", "data.train_path=a.txt"), MOLT_OK);

    /* The file's name labels validation errors; values set by code are checked too. */
    molt_config c;
    molt_config_defaults(&c);
    CU_ASSERT_EQUAL(fx_load(&fx, "[model]\nn_heads = 3\n", &c), MOLT_OK);
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_ERR_INPUT);
    char want[256];
    snprintf(want, sizeof want, "%s: model.d_model (64) is not divisible", fx.ini);
    CU_ASSERT(err_has(&fx, want));
    molt_config_defaults(&c);
    c.train.lr = 50;
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "config: train.lr: 50 is out of range"));
    molt_config_defaults(&c);
    c.model.mode = 7;
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_ERR_INPUT);
    molt_config_defaults(&c);
    c.lora.targets = 1u << MOLT_NPROJ;
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_ERR_INPUT);
    fx_close(&fx);
}

static void test_error_line_number(void) {
    fixture fx;
    fx_open(&fx);
    CU_ASSERT_EQUAL(fx_load(&fx,
                            "; line 1\n"
                            "[model]\n"
                            "d_model = 64\n"
                            "\n"
                            "[train]\n"
                            "   steps = 10\n"
                            "lr = fast   ; line 7\n"
                            "bogus = 1\n",
                            NULL),
                    MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 7, "train.lr: expected a number, got \"fast\""));
    CU_ASSERT(!err_has(&fx, "bogus"));
    /* CRLF files count lines the same way */
    CU_ASSERT_EQUAL(fx_load(&fx, "[train]\r\nsteps = 1\r\n\r\nlr = x\r\n", NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 4, "train.lr: expected a number, got \"x\""));
    fx_close(&fx);
}

static void test_overlong_line(void) {
    fixture fx;
    fx_open(&fx);
    char text[1024];
    int n = snprintf(text, sizeof text, "[model]\nd_model = 64\ninit_from = ");
    memset(text + n, 'a', 300);
    snprintf(text + n + 300, sizeof text - (size_t)n - 300, "\nn_layers = 3\n");
    CU_ASSERT_EQUAL(fx_load(&fx, text, NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 3, "line longer than"));
    /* a comment can be long only up to the same limit */
    memset(text, '#', 250);
    snprintf(text + 250, sizeof text - 250, "\n[train]\n");
    CU_ASSERT_EQUAL(fx_load(&fx, text, NULL), MOLT_ERR_INPUT);
    CU_ASSERT(err_at(&fx, 1, "line longer than"));
    fx_close(&fx);
}

static void test_roundtrip_exact(void) {
    fixture fx;
    fx_open(&fx);
    molt_config a, b;
    molt_config_defaults(&a);
    const char *sets[] = {"model.mode=peft",
                          "model.rope_theta=12345.678901234567",
                          "model.norm_eps=0.1",
                          "model.init_from=/x/y z.h5",
                          "lora.targets=k_proj,o_proj,gate_proj",
                          "lora.alpha=0.30000000000000004",
                          "lora.dropout=0.05",
                          "train.lr=3.3333333333333335e-4",
                          "train.min_lr=1e-300",
                          "train.beta2=0.999",
                          "train.seed=12345678901234567890",
                          "data.tasks=none",
                          "eval.tasks=reverse,upper",
                          "log.run_dir=runs/a=b:c"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        CU_ASSERT_EQUAL(molt_config_set(&a, sets[i]), MOLT_OK);
    a.train.grad_clip = 1.0 / 3.0;
    a.model.rope_theta = nextafter(1e4, 2e4);
    char *text = molt_config_to_ini(&a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT(strstr(text, "[model]\nmode = peft\n") != NULL);
    CU_ASSERT(strstr(text, "targets = k_proj,o_proj,gate_proj\n") != NULL);
    CU_ASSERT(strstr(text, "[data]\n") != NULL);
    CU_ASSERT(strstr(text, "tasks = none\n") != NULL);
    CU_ASSERT(strstr(text, "beta2 = 0.999\n") != NULL);
    /* onto a differently-filled config: every key must be written */
    molt_config_defaults(&b);
    CU_ASSERT_EQUAL(molt_config_set(&b, "train.lr=7"), MOLT_OK);
    CU_ASSERT_EQUAL(molt_config_set(&b, "data.tasks=all"), MOLT_OK);
    capture_begin(&fx);
    int rc = molt_config_load_string(&b, text, "resolved.ini");
    capture_end(&fx);
    CU_ASSERT_EQUAL(rc, MOLT_OK);
    CU_ASSERT_STRING_EQUAL(fx.err, "");
    CU_ASSERT_STRING_EQUAL(b.source, "resolved.ini");
    memset(a.source, 0, sizeof a.source);
    memset(b.source, 0, sizeof b.source);
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
    free(text);

    /* load_string reports with its name and leaves the config alone on error */
    molt_config_defaults(&b);
    capture_begin(&fx);
    rc = molt_config_load_string(&b, "[train]\nsteps = 5\nlr = 50\n", "ckpt.h5");
    capture_end(&fx);
    CU_ASSERT_EQUAL(rc, MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "ckpt.h5:3: train.lr: 50 is out of range"));
    CU_ASSERT_EQUAL(b.train.steps, 100);
    fx_close(&fx);
}

/* fuzz_config found these: a LAYERS count near LONG_MAX kept validation in
 * its per-layer loop for hours (and overflowed the layer counter). */
static void test_fuzz_regressions(void) {
    fixture fx;
    fx_open(&fx);
    molt_config c;
    molt_config_defaults(&c);
    const char *ini = "[model]\nmode = peft\n[lora]\ntargets = q_proj\n[moe]\nplacement = plugin\n"
                      "num_experts = 3x1,4x1999999999999999999999,\n";
    CU_ASSERT_EQUAL(fx_load(&fx, ini, &c), MOLT_OK);
    CU_ASSERT_EQUAL(fx_validate(&fx, &c), MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "moe.num_experts: bad layer count at \"1999999999999999999999,\""));
    CU_ASSERT_EQUAL(validate_with(&fx, "moe.placement=plugin", "moe.num_experts=2x1025"),
                    MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "LAYERS in 1 .. 1024"));
    fx_close(&fx);
}

static void test_missing_file(void) {
    fixture fx;
    fx_open(&fx);
    molt_config c;
    molt_config_defaults(&c);
    capture_begin(&fx);
    int rc = molt_config_load(&c, "/nonexistent/molt.ini");
    capture_end(&fx);
    CU_ASSERT_EQUAL(rc, MOLT_ERR_INPUT);
    CU_ASSERT(err_has(&fx, "cannot open config /nonexistent/molt.ini: No such file"));
    fx_close(&fx);
}

static void test_print_keys(void) {
    fixture fx;
    fx_open(&fx);
    FILE *f = fopen(fx.log, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    molt_config_print_keys(f);
    fclose(f);
    f = fopen(fx.log, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t n = fread(fx.err, 1, sizeof fx.err - 1, f);
    fx.err[n] = '\0';
    fclose(f);
    int lines = 0;
    for (char *p = fx.err; *p; p++)
        lines += *p == '\n' && p[1] == ' ';
    CU_ASSERT(lines >= 45);
    CU_ASSERT(err_has(&fx, "  train.lr "));
    CU_ASSERT(err_has(&fx, "default=1e-3"));
    CU_ASSERT(err_has(&fx, "— peak learning rate"));
    CU_ASSERT(err_has(&fx, "full, peft"));
    fx_close(&fx);
}

int main(int argc, char **argv) {
    molt_test_case cases[] = {{"defaults pass validation", test_defaults_validate},
                              {"a good file sets every type", test_good_file_sets_every_type},
                              {"unknown section and key", test_unknown_section_and_key},
                              {"syntax errors", test_syntax_errors},
                              {"bad integers and numbers", test_bad_numbers},
                              {"ranges, open and closed ends", test_ranges},
                              {"enums and name lists", test_enums_and_lists},
                              {"bool spellings", test_bool_spellings},
                              {"strings: length and INI-safe", test_strings},
                              {"--set overrides and malformed --set", test_set_overrides},
                              {"cross-key validation", test_cross_key_validation},
                              {"error names the right line", test_error_line_number},
                              {"overlong line", test_overlong_line},
                              {"to_ini -> load_string is exact", test_roundtrip_exact},
                              {"fuzz regressions", test_fuzz_regressions},
                              {"missing file", test_missing_file},
                              {"print_keys lists every key", test_print_keys},
                              {NULL, NULL}};
    return molt_run_suite(argc, argv, "config", cases);
}
