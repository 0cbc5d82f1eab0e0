/* plan.h — the dispatch plan of one MoE layer: which tokens each expert
 * computes, grouped by expert so that an expert runs one GEMM over a
 * contiguous block (DESIGN §5 step 1). Entry j of the plan is token token[j]
 * with combine weight weight[j]; entries of expert e are
 * [offset[e], offset[e+1]), in increasing token order. Expert parallelism
 * sends exactly these blocks between ranks. */
#ifndef MOLT_PLAN_H
#define MOLT_PLAN_H
#include <stdint.h>

typedef struct {
    int N, cap;     /* experts; capacity in entries */
    int total;      /* entries in use */
    int *offset;    /* [N+1] */
    int *token;     /* [cap] */
    float *weight;  /* [cap] */
} molt_plan;

int molt_plan_alloc(molt_plan *pl, int N, int cap);
void molt_plan_free(molt_plan *pl);
/* Group the selections sel[T,N] (weights w[T,N]) by expert. cap >= count. */
void molt_plan_build(molt_plan *pl, const uint8_t *sel, const float *w, int T);

#endif
