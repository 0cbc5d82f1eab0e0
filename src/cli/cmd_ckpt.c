/* cmd_ckpt.c — `molt ckpt inspect|verify PATH`: what a checkpoint holds, and
 * whether every byte of it reads back (DESIGN §7). Serial reads: rank 0 does
 * the work and the other ranks return its exit code. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/ckpt.h"
#include "molt/err.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: molt ckpt inspect|verify PATH\n"
            "\n"
            "  inspect   print the root attributes (format, version, step, tokens seen,\n"
            "            world size, dp, ep) and every dataset with dtype, shape and size\n"
            "  verify    read every dataset (Fletcher32 checksums on every chunk) and\n"
            "            check that each parameter and AdamW moment the checkpoint's own\n"
            "            config implies is present with the right shape\n"
            "\n"
            "Works on training checkpoints (checkpoints/<run>/step_N.h5) and on weight\n"
            "files (final.h5). Exit 0 when sound, 2 with the file and dataset named\n"
            "when not.\n");
}

int molt_cmd_ckpt(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0) usage(stdout);
            return MOLT_OK;
        }
    if (argc != 3 || (strcmp(argv[1], "inspect") && strcmp(argv[1], "verify"))) {
        if (rank == 0) usage(stderr);
        return MOLT_ERR_INPUT;
    }
    if (rank == 0) rc = molt_ckpt_examine(argv[2], stdout, !strcmp(argv[1], "verify"));
    fflush(stdout);
    MOLT_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, comm));
done:
    return rc;
}
