/* eval_common.h — pieces every evaluation shares (trainer.c's task suite,
 * mceval.c's multiple choice, feat_eval.c's languages); not public API. */
#ifndef MOLT_TRAIN_EVAL_COMMON_H
#define MOLT_TRAIN_EVAL_COMMON_H
#include <mpi.h>
#include <stdint.h>

#include "molt/model.h"

/* Summed log-softmax of one row's targets (logits [T, V]; targets < 0 are
 * skipped). count (may be NULL) += targets scored; greedy (may be NULL) = 1
 * iff every target is its row's argmax. */
double molt_row_loglik(const float *logits, const int32_t *tg, int T, int V, long *count,
                       int *greedy);

/* End of an evaluation, collective over comm: sum hits[n], seen[n], loss[2]
 * (summed loss, counted targets) and route ([MOLT_NTASKS * experts], may be
 * NULL) over the ranks; acc[g] = hits/seen (-1 where nothing was seen),
 * *eval_loss = loss per target. b: any batch of the last forward's shape. */
int molt_eval_reduce(const molt_model *m, const molt_batch *b, MPI_Comm comm, long *hits,
                     long *seen, int n, double loss[2], double *route, double *acc,
                     double *eval_loss);

#endif
