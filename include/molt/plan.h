/* plan.h — the dispatch plan of one MoE site (DESIGN §5 step 1): the
 * (token, expert) pairs to compute, in the order the all-to-all sends them.
 *
 * Local tokens are split into C chunks of consecutive rows (chunk c: rows
 * [c·T/C, (c+1)·T/C)). Entries are ordered by chunk, then destination ep rank
 * k, then k's local expert l (global expert e = l·P + k, dist.h), then token.
 * With P = C = 1 this is simply "grouped by expert, tokens in order", and
 * eoff[e] gives expert e's entries. Entry j is token[j] with combine weight
 * weight[j] for expert expert[j]. */
#ifndef MOLT_PLAN_H
#define MOLT_PLAN_H
#include <stdint.h>

typedef struct {
    int N, cap, P, C;  /* experts; capacity in entries; ep ranks; chunks */
    int nlmax;         /* most experts any rank holds: ceil(N / P) */
    int total;         /* entries in use */
    int *token;        /* [cap] */
    float *weight;     /* [cap] */
    int *expert;       /* [cap] */
    int *scnt;         /* [C][P][nlmax] entries per (chunk, dest, dest's local expert) */
    int *eoff;         /* [N+1] when P = C = 1: expert e's entries are [eoff[e], eoff[e+1]) */
} molt_plan;

int molt_plan_alloc(molt_plan *pl, int N, int cap, int P, int C);
void molt_plan_free(molt_plan *pl);
/* Plan the pairs sel[t,e] != 0 over T tokens with weights w[T,N]. */
void molt_plan_build(molt_plan *pl, const uint8_t *sel, const float *w, int T);

#endif
