/* cli_config.c — the configuration every rank of a command agrees on
 * (src/cli/commands.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/coll.h"
#include "molt/err.h"

int molt_cli_config(MPI_Comm comm, molt_cli_resolve resolve, void *ctx, molt_config *c,
                    char **text) {
    int rc = MOLT_OK, rank = 0;
    long len = 0;
    *text = NULL;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank == 0) {
        rc = resolve(ctx, c, text);
        len = rc ? -rc : (long)strlen(*text) + 1;
    }
    MOLT_MPI(MPI_Bcast(&len, 1, MPI_LONG, 0, comm));
    if (len <= 0) {
        rc = (int)-len;
        goto done;
    }
    if (rank != 0) MOLT_ALLOC(*text, len);
    MOLT_TRY(molt_bcast_bytes(*text, (size_t)len, 0, comm));
    /* every rank (rank 0 too, so all hold the same struct) parses the text */
    molt_config_defaults(c);
    rc = molt_config_load_string(c, *text, "resolved config");
done:
    return rc;
}
