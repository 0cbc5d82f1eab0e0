/* layout.c — process groups (include/molt/dist.h). */
#include <stdio.h>
#include <string.h>

#include "molt/dist.h"
#include "molt/err.h"

void molt_layout_single(molt_layout *lay) {
    memset(lay, 0, sizeof *lay);
    lay->world = MPI_COMM_SELF;
    lay->ep_comm = lay->edp_comm = MPI_COMM_NULL;
    lay->size = lay->dp = lay->ep = 1;
}

int molt_layout_create(molt_layout *lay, MPI_Comm world, int ep) {
    int rc = MOLT_OK;
    molt_layout_single(lay);
    lay->world = world;
    MOLT_MPI(MPI_Comm_rank(world, &lay->rank));
    MOLT_MPI(MPI_Comm_size(world, &lay->size));
    if (ep < 1 || lay->size % ep)
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "parallel.ep = %d does not divide the %d ranks of the job (world = dp x ep)", ep,
                  lay->size);
    lay->ep = ep, lay->dp = lay->size / ep;
    lay->ep_rank = lay->rank % ep, lay->dp_rank = lay->rank / ep;
    MOLT_MPI(MPI_Comm_split(world, lay->dp_rank, lay->ep_rank, &lay->ep_comm));
    MOLT_MPI(MPI_Comm_split(world, lay->ep_rank, lay->dp_rank, &lay->edp_comm));
done:
    if (rc) molt_layout_free(lay);
    return rc;
}

void molt_layout_free(molt_layout *lay) {
    if (lay->ep_comm != MPI_COMM_NULL) MPI_Comm_free(&lay->ep_comm);
    if (lay->edp_comm != MPI_COMM_NULL) MPI_Comm_free(&lay->edp_comm);
    lay->ep_comm = lay->edp_comm = MPI_COMM_NULL;
}

/* Appends "{a,b,...}" groups: members r with key(r) == g, for each g. */
static size_t groups(char *buf, size_t n, size_t at, const molt_layout *lay, int by_ep_group) {
    int ng = by_ep_group ? lay->dp : lay->ep, per = by_ep_group ? lay->ep : lay->dp;
    for (int g = 0; g < ng && at < n; g++) {
        at += (size_t)snprintf(buf + at, n - at, " {");
        for (int j = 0; j < per && at < n; j++) {
            int r = by_ep_group ? g * lay->ep + j : j * lay->ep + g;
            at += (size_t)snprintf(buf + at, n - at, j ? ",%d" : "%d", r);
        }
        if (at < n) at += (size_t)snprintf(buf + at, n - at, "}");
        if (g == 7 && ng > 9 && at < n) { /* long jobs: first groups and the count */
            at += (size_t)snprintf(buf + at, n - at, " ... (%d groups)", ng);
            break;
        }
    }
    return at;
}

void molt_layout_describe(const molt_layout *lay, char *buf, size_t n) {
    size_t at = (size_t)snprintf(buf, n, "world %d = dp %d x ep %d; ep groups", lay->size, lay->dp,
                                 lay->ep);
    at = groups(buf, n, at, lay, 1);
    if (at < n) at += (size_t)snprintf(buf + at, n - at, "; edp groups");
    groups(buf, n, at, lay, 0);
}

int molt_agree(MPI_Comm comm, int rc) {
    int all = rc;
    if (MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS) return MOLT_ERR_INTERNAL;
    return all;
}

void molt_abort_job(MPI_Comm comm, int rc) {
    int world = 1;
    MPI_Comm_size(comm, &world);
    if (world > 1) {
        fprintf(stderr, "molt: aborting the job (exit %d)\n", rc);
        fflush(stderr);
        MPI_Abort(comm, rc);
    }
}
