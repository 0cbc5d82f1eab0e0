/* cmd_eval.c — `molt eval CONFIG --ckpt PATH [--tasks FILE.jsonl ...]
 * [--log-samples OUT.jsonl] [--set section.key=value ...] [--batch N]`.
 * Rank 0 checks the arguments and resolves the configuration, printing
 * errors once; every rank then parses the same resolved text and the same
 * arguments, so all ranks agree on the outcome (as cmd_train.c). The work is
 * molt_eval_run (include/molt/mceval.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/config.h"
#include "molt/data.h"
#include "molt/err.h"
#include "molt/mceval.h"

static void eval_help(void) {
    printf("usage: [mpirun -np N] molt eval CONFIG --ckpt PATH [--tasks FILE.jsonl ...]\n"
           "                 [--log-samples OUT.jsonl] [--set section.key=value ...] [--batch N]\n"
           "\n"
           "Evaluates the weights in PATH (a final.h5 or a training checkpoint\n"
           "checkpoints/<run>/step_N.h5, written at any dp x ep layout) in the model CONFIG\n"
           "describes. The file's stored config must agree with CONFIG on every key that\n"
           "shapes the weights (model.* but init_from, mode and max_seq_len; lora.r,\n"
           "lora.targets, moe.placement, moe.targets, moe.num_experts, moe.router,\n"
           "moe.expert_d_ff); other model, lora and moe differences are listed. The\n"
           "weights come from PATH alone (model.init_from is not read). Forwards run in\n"
           "inference mode: no dropout, no router jitter, no capacity cut.\n"
           "\n"
           "Multiple choice (--tasks, as lm-eval-harness): each JSONL line is\n"
           "  {\"context\": \"...\", \"choices\": [\"...\", \"...\"], \"label\": 1}\n"
           "Choice j is scored on the byte tokens <bos> context choice as the summed\n"
           "log-probability of the choice's tokens. acc takes the highest sum, acc_norm\n"
           "the highest sum per byte of the choice (ties: the lower index). A sequence\n"
           "longer than model.max_seq_len + 1 loses its oldest context bytes (the <bos>\n"
           "stays); a choice longer than model.max_seq_len bytes is an error. A malformed\n"
           "line (not JSON, a missing key, label out of range, no choices, an empty\n"
           "choice) exits 2 naming the file and line. Rank 0 prints file, n, acc and\n"
           "acc_norm per file.\n"
           "\n"
           "Built-in task suite: with data.source = tasks and eval.samples > 0, also the\n"
           "per-task exact-match accuracy of `molt train`'s evaluation (eval.tasks).\n"
           "\n"
           "Any number of ranks: sequences are spread over the ranks and the results\n"
           "gathered on rank 0; with parallel.ep = P each rank holds 1/P of the experts.\n"
           "\n"
           "  --ckpt PATH               the weights to evaluate (required)\n"
           "  --tasks FILE.jsonl ...    multiple-choice files (repeatable)\n"
           "  --log-samples OUT.jsonl   one line per example, in file order: {\"file\",\n"
           "                            \"index\", \"label\", \"pred\", \"pred_norm\", \"acc\",\n"
           "                            \"acc_norm\", \"choices\": [{\"loglik\", \"tokens\",\n"
           "                            \"bytes\"}, ...]}\n"
           "  --set section.key=value   override one key (repeatable, applied in order)\n"
           "  --batch N                 sequences per forward on each rank (default: as many\n"
           "                            as the training micro-batch's tokens allow)\n"
           "  --help                    this text\n"
           "\n"
           "exit codes: 0 success, 2 bad input (arguments, config, weights file, JSONL),\n"
           "1 internal or system failure\n");
}

typedef struct {
    molt_eval_opts o;
    const char **tasks; /* [argc] */
} eval_args;

/* The options after CONFIG; --set pairs are applied to c when c != NULL.
 * Errors are reported (rank 0 calls this first; the others only after it
 * succeeded, on the same arguments). */
static int parse_args(int argc, char **argv, eval_args *a, molt_config *c) {
    int rc = MOLT_OK;
    memset(a, 0, sizeof *a);
    MOLT_ALLOC(a->tasks, argc);
    a->o.tasks = a->tasks;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(arg, "--ckpt") && has_value) {
            a->o.ckpt = argv[++i];
        } else if (!strcmp(arg, "--log-samples") && has_value) {
            a->o.log_samples = argv[++i];
        } else if (!strcmp(arg, "--tasks") && has_value && strncmp(argv[i + 1], "--", 2)) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
                a->tasks[a->o.n_tasks++] = argv[++i];
        } else if (!strcmp(arg, "--set") && has_value) {
            if (c) MOLT_TRY(molt_config_set(c, argv[i + 1]));
            i++;
        } else if (!strncmp(arg, "--set=", 6)) {
            if (c) MOLT_TRY(molt_config_set(c, arg + 6));
        } else if (!strcmp(arg, "--batch") && has_value) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || v < 1 || v > 1 << 20)
                MOLT_FAIL(MOLT_ERR_INPUT, "molt eval: --batch '%s': expected an integer in "
                          "1..%d", argv[i], 1 << 20);
            a->o.batch = (int)v;
        } else if (!strcmp(arg, "--ckpt") || !strcmp(arg, "--log-samples") ||
                   !strcmp(arg, "--tasks") || !strcmp(arg, "--set") || !strcmp(arg, "--batch")) {
            MOLT_FAIL(MOLT_ERR_INPUT, "molt eval: %s needs a value (see molt eval --help)", arg);
        } else {
            MOLT_FAIL(MOLT_ERR_INPUT, "molt eval: unexpected argument '%s' (see molt eval --help)",
                      arg);
        }
    }
    if (!a->o.ckpt) MOLT_FAIL(MOLT_ERR_INPUT, "molt eval: --ckpt PATH is required");
    if (a->o.log_samples && !a->o.n_tasks)
        MOLT_FAIL(MOLT_ERR_INPUT, "molt eval: --log-samples needs --tasks FILE.jsonl");
done:
    return rc;
}

/* Rank 0: file + arguments + validation -> resolved text (or an error). */
typedef struct {
    int argc;
    char **argv;
} eval_argv;

static int resolve(void *ctx, molt_config *c, char **text) {
    int rc = MOLT_OK;
    const int argc = ((eval_argv *)ctx)->argc;
    char **argv = ((eval_argv *)ctx)->argv;
    eval_args a = {0};
    molt_config_defaults(c);
    MOLT_TRY(molt_config_load(c, argv[1]));
    MOLT_TRY(parse_args(argc, argv, &a, c));
    MOLT_TRY(molt_config_validate(c));
    if (!(*text = molt_config_to_ini(c))) rc = MOLT_ERR_INTERNAL;
done:
    free(a.tasks);
    return rc;
}

int molt_cmd_eval(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    char *text = NULL;
    eval_args a = {0};
    molt_config c;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            MPI_Comm_rank(comm, &rank);
            if (rank == 0) eval_help();
            return MOLT_OK;
        }
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (argc < 2 || argv[1][0] == '-') {
        if (rank == 0)
            fprintf(stderr, "usage: molt eval CONFIG --ckpt PATH [--tasks FILE.jsonl ...] "
                            "[--log-samples OUT.jsonl] (molt eval --help)\n");
        return MOLT_ERR_INPUT;
    }
    eval_argv args = {argc, argv};
    rc = molt_cli_config(comm, resolve, &args, &c, &text);
    if (!rc) rc = parse_args(argc, argv, &a, NULL); /* checked on rank 0 already */
    int all = rc;
    MOLT_MPI(MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, comm));
    if ((rc = all) != MOLT_OK) goto done;
    snprintf(c.source, sizeof c.source, "%s", argv[1]);
    rc = molt_eval_run(&c, &a.o, comm);
done:
    free(a.tasks);
    free(text);
    return rc;
}
