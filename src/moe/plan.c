/* plan.c — see include/molt/plan.h. */
#include "molt/plan.h"

#include <stdlib.h>
#include <string.h>

#include "molt/err.h"

int molt_plan_alloc(molt_plan *pl, int N, int cap) {
    int rc = MOLT_OK;
    memset(pl, 0, sizeof *pl);
    pl->N = N, pl->cap = cap;
    MOLT_ALLOC(pl->offset, N + 1);
    MOLT_ALLOC(pl->token, cap);
    MOLT_ALLOC(pl->weight, cap);
done:
    if (rc) molt_plan_free(pl);
    return rc;
}

void molt_plan_free(molt_plan *pl) {
    free(pl->offset), free(pl->token), free(pl->weight);
    memset(pl, 0, sizeof *pl);
}

void molt_plan_build(molt_plan *pl, const uint8_t *sel, const float *w, int T) {
    const int N = pl->N;
    int j = 0;
    /* counting pass per expert keeps token order inside each block */
    for (int e = 0; e < N; e++) {
        pl->offset[e] = j;
        for (int t = 0; t < T; t++)
            if (sel[(long)t * N + e]) {
                pl->token[j] = t;
                pl->weight[j] = w[(long)t * N + e];
                j++;
            }
    }
    pl->offset[N] = j;
    pl->total = j;
}
