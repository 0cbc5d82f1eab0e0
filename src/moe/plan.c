/* plan.c — see include/molt/plan.h. */
#include "molt/plan.h"

#include <stdlib.h>
#include <string.h>

#include "molt/err.h"

int molt_plan_alloc(molt_plan *pl, int N, int cap, int P, int C) {
    int rc = MOLT_OK;
    memset(pl, 0, sizeof *pl);
    pl->N = N, pl->cap = cap, pl->P = P, pl->C = C;
    pl->nlmax = (N + P - 1) / P;
    MOLT_ALLOC(pl->token, cap > 0 ? cap : 1);
    MOLT_ALLOC(pl->weight, cap > 0 ? cap : 1);
    MOLT_ALLOC(pl->expert, cap > 0 ? cap : 1);
    MOLT_ALLOC(pl->scnt, (long)C * P * (pl->nlmax > 0 ? pl->nlmax : 1));
    MOLT_ALLOC(pl->eoff, N + 1);
done:
    if (rc) molt_plan_free(pl);
    return rc;
}

void molt_plan_free(molt_plan *pl) {
    free(pl->token), free(pl->weight), free(pl->expert), free(pl->scnt), free(pl->eoff);
    memset(pl, 0, sizeof *pl);
}

void molt_plan_build(molt_plan *pl, const uint8_t *sel, const float *w, int T) {
    const int N = pl->N, P = pl->P, C = pl->C;
    int j = 0;
    for (int c = 0; c < C; c++) {
        const int t0 = (int)((long)c * T / C), t1 = (int)((long)(c + 1) * T / C);
        for (int k = 0; k < P; k++)
            for (int l = 0; l < pl->nlmax; l++) {
                const int e = l * P + k, start = j;
                if (e < N) {
                    if (P == 1 && C == 1) pl->eoff[e] = j;
                    for (int t = t0; t < t1; t++)
                        if (sel[(long)t * N + e]) {
                            pl->token[j] = t;
                            pl->weight[j] = w[(long)t * N + e];
                            pl->expert[j] = e;
                            j++;
                        }
                }
                pl->scnt[((long)c * P + k) * pl->nlmax + l] = j - start;
            }
    }
    if (P == 1 && C == 1) pl->eoff[N] = j;
    pl->total = j;
}
