/* eval_common.c — see eval_common.h. */
#include "train/eval_common.h"

#include <math.h>

#include "molt/err.h"

double molt_row_loglik(const float *logits, const int32_t *tg, int T, int V, long *count,
                       int *greedy) {
    double ll = 0;
    if (greedy) *greedy = 1;
    for (int t = 0; t < T; t++) {
        if (tg[t] < 0) continue;
        const float *z = logits + (long)t * V;
        float mx = z[0];
        int best = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > mx) mx = z[v], best = v;
        double sum = 0;
        for (int v = 0; v < V; v++)
            sum += exp((double)z[v] - mx);
        ll += ((double)z[tg[t]] - mx) - log(sum);
        if (greedy) *greedy &= best == tg[t];
        if (count) (*count)++;
    }
    return ll;
}

int molt_eval_reduce(const molt_model *m, const molt_batch *b, MPI_Comm comm, long *hits,
                     long *seen, int n, double loss[2], double *route, double *acc,
                     double *eval_loss) {
    int rc = MOLT_OK;
    MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, hits, n, MPI_LONG, MPI_SUM, comm));
    MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, seen, n, MPI_LONG, MPI_SUM, comm));
    MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, loss, 2, MPI_DOUBLE, MPI_SUM, comm));
    int nexp = molt_moe_task_routing(m, b, NULL, NULL, 0);
    if (route && nexp)
        MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, route, MOLT_NTASKS * nexp, MPI_DOUBLE, MPI_SUM, comm));
    for (int g = 0; g < n; g++)
        acc[g] = seen[g] ? (double)hits[g] / seen[g] : -1.0;
    *eval_loss = loss[1] > 0 ? loss[0] / loss[1] : 0.0;
done:
    return rc;
}
