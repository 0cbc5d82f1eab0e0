/* cmd_train.c — `molt train CONFIG [--set section.key=value ...]`.
 * Rank 0 reads and checks the configuration and prints errors once; every rank
 * then parses the same resolved text, so all ranks agree on the outcome. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "molt/ckpt.h"
#include "molt/config.h"
#include "molt/err.h"
#include "molt/train.h"

static void train_help(void) {
    printf("usage: [mpirun -np N] molt train CONFIG [--set section.key=value ...]\n\n"
           "Trains the model CONFIG describes (dense pretraining in mode=full, LoRA fine-\n"
           "tuning of a frozen base in mode=peft) on all ranks of the job: each global\n"
           "batch is split across ranks and gradients are all-reduced. With\n"
           "parallel.ep = P the experts of every MoE layer are split over P ranks\n"
           "(ranks = dp x P) and tokens travel to them by all-to-all. Outputs go to\n"
           "log.run_dir (default runs/<config name>): config.ini, metrics.jsonl,\n"
           "eval.json, final.h5.\n\n"
           "  --set section.key=value   override one key (repeatable, applied in order)\n"
           "  --resume [PATH]           continue from a checkpoint: PATH, or the run's\n"
           "                            latest (checkpoint.dir/<run>/latest). Weights,\n"
           "                            optimizer, step, data order and schedule continue\n"
           "                            exactly; any dp x ep layout may load it\n"
           "  --auto-resume             --resume if the run has a latest checkpoint, else\n"
           "                            start afresh (batch jobs that may be requeued)\n"
           "  --help                    this text\n\n"
           "configuration keys:\n");
    molt_config_print_keys(stdout);
}

/* Rank 0: file + overrides + validation -> resolved text (or an error). */
typedef struct {
    int argc;
    char **argv;
} train_argv;

static int resolve(void *ctx, molt_config *c, char **text) {
    const int argc = ((train_argv *)ctx)->argc;
    char **argv = ((train_argv *)ctx)->argv;
    /* --resume [PATH] is not a config matter: skipped here (see resume_arg) */
    int rc = MOLT_OK;
    molt_config_defaults(c);
    MOLT_TRY(molt_config_load(c, argv[1]));
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            if (i + 1 < argc && argv[i + 1][0] != '-') i++;
        } else if (!strncmp(argv[i], "--resume=", 9) || !strcmp(argv[i], "--auto-resume")) {
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            MOLT_TRY(molt_config_set(c, argv[++i]));
        } else if (!strncmp(argv[i], "--set=", 6)) {
            MOLT_TRY(molt_config_set(c, argv[i] + 6));
        } else {
            MOLT_FAIL(MOLT_ERR_INPUT, "molt train: unexpected argument '%s' (see molt train --help)",
                      argv[i]);
        }
    }
    MOLT_TRY(molt_config_validate(c));
    if (!(*text = molt_config_to_ini(c))) rc = MOLT_ERR_INTERNAL;
done:
    return rc;
}

/* NULL: no --resume; "": the latest checkpoint; else the path given.
 * --auto-resume: "" when the run's checkpoint directory has a `latest`
 * (decided by rank 0, so every rank agrees), else NULL. */
static int resume_arg(int argc, char **argv, const molt_config *c, MPI_Comm comm,
                      const char **out) {
    int rc = MOLT_OK, rank = 0, have = 0;
    *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--set")) i++;
        else if (!strcmp(argv[i], "--resume"))
            *out = i + 1 < argc && argv[i + 1][0] != '-' ? argv[i + 1] : "";
        else if (!strncmp(argv[i], "--resume=", 9)) *out = argv[i] + 9;
        else if (!strcmp(argv[i], "--auto-resume")) have = -1;
    }
    if (have == 0) return MOLT_OK;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (*out) /* every rank sees the same arguments; rank 0 says so */
        return rank ? MOLT_ERR_INPUT
                    : MOLT_ERROR(MOLT_ERR_INPUT, "molt train: --resume and --auto-resume exclude "
                                                 "each other");
    if (rank == 0) {
        char run[MOLT_PATH_MAX], dir[MOLT_PATH_MAX + 8], latest[MOLT_PATH_MAX + 16];
        molt_run_dir(c, run, sizeof run);
        molt_ckpt_dir(c, run, dir, sizeof dir);
        snprintf(latest, sizeof latest, "%s/latest", dir);
        have = access(latest, F_OK) == 0;
        printf("molt: --auto-resume: %s\n", have ? "resuming from the latest checkpoint"
                                                 : "no checkpoint yet, starting at step 0");
    }
    MOLT_MPI(MPI_Bcast(&have, 1, MPI_INT, 0, comm));
    if (have) *out = "";
done:
    return rc;
}

int molt_cmd_train(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    char *text = NULL;
    molt_config c;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            MPI_Comm_rank(comm, &rank);
            if (rank == 0) train_help();
            return MOLT_OK;
        }
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (argc < 2 || argv[1][0] == '-') {
        if (rank == 0)
            fprintf(stderr, "usage: molt train CONFIG [--set section.key=value ...] "
                            "(molt train --help)\n");
        return MOLT_ERR_INPUT;
    }
    train_argv args = {argc, argv};
    rc = molt_cli_config(comm, resolve, &args, &c, &text);
    int all = rc;
    MOLT_MPI(MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, comm));
    if ((rc = all) != MOLT_OK) goto done;
    snprintf(c.source, sizeof c.source, "%s", argv[1]);
    if (rank == 0) {
        printf("# molt train %s — resolved configuration\n%s\n", argv[1], text);
        fflush(stdout);
    }
    const char *resume = NULL;
    if ((rc = resume_arg(argc, argv, &c, comm, &resume))) goto done;
    rc = molt_train_run(&c, text, comm, resume);
done:
    free(text);
    return rc;
}
