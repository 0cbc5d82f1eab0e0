/* router.h — MoE routers and auxiliary losses over one layer's tokens
 * (DESIGN §3–§4). Pure functions on fp32 buffers: the caller computes the
 * router logits z = x W_g^T (+ b) with a GEMM and owns every buffer.
 *
 * Forward: z [T,N] -> p = softmax(z) [T,N] (fp32), the selection sel [T,N]
 * (1 = expert computes this token), and the combine weights w [T,N] (0 where
 * not selected). Ties break toward the lower expert index.
 * Backward: given dL/dw [T,N] (and dL/dp [T,N] from auxiliary losses, may be
 * NULL) -> dL/dz [T,N]. The selection is treated as a constant (no gradient
 * through the discrete choice), as in every reference implementation.
 *
 * Order of calls for one layer and micro-batch. molt_aux_backward
 * ACCUMULATES into (dp_aux, dz_aux); molt_router_backward OVERWRITES dz, so
 * the direct z part of the aux losses (zloss) goes through its own buffer:
 *   molt_router_forward(c, z, T, p, w, sel, ent, soft);
 *   molt_router_stats_add(&local, ...);  -> MPI_SUM over the global batch -> g
 *   molt_aux_loss(&aux, c, &g);                                  (loss values)
 *   zero dp_aux, dz_aux;
 *   molt_aux_backward(&aux, c, &g, z, p, w, sel, T, dp_aux, dz_aux);
 *   molt_router_backward(c, p, w, sel, dw, dp_aux, T, dz);  (dp_aux + dp(w)
 *                                          through one softmax backward)
 *   dz += dz_aux;
 *
 * Rules where DESIGN §3 leaves room (tests/unit/test_router.c, the oracle
 * tests/ref/router_oracle.py):
 *   k = top_k clamped to [1, N] (topk, factor, expert_choice);
 *   top-p cumulative sums run in double over the fp32 p sorted descending
 *   (lower index first on ties); topp/dynmole with top_p >= 1 keep all N
 *   (true in exact arithmetic; fp32 rounding of p must not drop an expert);
 *   dynmole keeps at least keep_top_k (clamped to [0, N]; 0 can leave a
 *   token with no expert) and entropy_threshold >= 1 disables the fallback;
 *   expert_choice: C = molt_router_capacity(); a token may get 0 experts. */
#ifndef MOLT_ROUTER_H
#define MOLT_ROUTER_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MOLT_ROUTER_TOPK = 0,      /* keep k largest p; w = p renormalised over the kept set */
    MOLT_ROUTER_TOPP,          /* sorted prefix with sum >= top_p (crossing expert kept); w = p */
    MOLT_ROUTER_DYNMOLE,       /* c_j <= top_p (crossing NOT kept), >= keep_top_k, soft if H_q > thr; w = p */
    MOLT_ROUTER_SWITCH,        /* top-1; w = p of the chosen expert (jitter is on the input: caller) */
    MOLT_ROUTER_SOFT,          /* all experts; w = p */
    MOLT_ROUTER_EXPERT_CHOICE, /* expert e takes its top-C tokens by p, C = capacity_factor*T*k/N; w = p */
    MOLT_ROUTER_FACTOR,        /* hard top-k one-hot, w = N/k on the kept set; no gradient to z */
    MOLT_NROUTERS
} molt_router_kind;
extern const char *const molt_router_names[MOLT_NROUTERS]; /* "topk", "topp", "dynmole", … */

typedef struct {
    int kind, N, top_k, keep_top_k;
    float top_p, entropy_threshold, entropy_q, capacity_factor;
} molt_router_cfg;

/* Normalised Tsallis entropy of one distribution p[N] (DESIGN §3), with
 * p~ = p + 1e-5; q = 1 gives the Shannon form. N = 1 gives 0. */
double molt_tsallis_entropy(const float *p, int N, double q);

/* Expert-choice capacity for T tokens: C = ceil(capacity_factor*T*k/N), with
 * k = top_k clamped to [1, N], an fp32 excess below 1e-6 relative ignored
 * (1.1f*10*2/2 gives 11, not 12), and C clamped to [1, T]. */
int molt_router_capacity(const molt_router_cfg *c, int T);

/* Forward over T tokens. ent[T] (may be NULL) receives H_q(p_t) (dynmole: the
 * value that decided the soft fallback; others: the same formula with q from
 * cfg, for diagnostics); soft[T] (may be NULL) = 1 where dynmole fell back to
 * all experts. Returns the number of (token, expert) selections, or -1 (an
 * error reported) on bad arguments (N < 1, T < 0, unknown kind) or when the
 * sort scratch (8*T*N bytes) cannot be allocated. */
long molt_router_forward(const molt_router_cfg *c, const float *z, int T, float *p, float *w,
                         uint8_t *sel, float *ent, uint8_t *soft);
/* The same with caller-owned sort scratch of molt_router_scratch_bytes(N, T)
 * bytes (training steps allocate nothing). */
size_t molt_router_scratch_bytes(int N, int T);
long molt_router_forward_ws(const molt_router_cfg *c, const float *z, int T, float *p, float *w,
                            uint8_t *sel, float *ent, uint8_t *soft, void *scratch);

/* Backward: dz[T,N] = d/dz of (sum dw*w + sum dp*p). dp may be NULL.
 * Overwrites dz (see the order of calls above for the aux losses' dz). */
void molt_router_backward(const molt_router_cfg *c, const float *p, const float *w,
                          const uint8_t *sel, const float *dw, const float *dp, int T, float *dz);

/* Per-expert statistics of one layer over a set of tokens, summed (not yet
 * divided), so that ranks and micro-batches can add them up (MPI_SUM):
 *   count[i]   = number of tokens whose selection includes i
 *   psum[i]    = sum_t p_ti
 *   wsum[i]    = sum_t w_ti  (dynmole's soft f_i)
 *   ent_sum    = sum_t H_q(p_t);  zsum = sum_t logsumexp(z_t)^2;  tokens = T */
typedef struct {
    double *count, *psum, *wsum; /* [N] each, caller-owned */
    double ent_sum, zsum, tokens, selections;
    double pa_sum, pabal_sum; /* pa: sum_t KL_t; sum_t sum_i mask_ti p_ti / N (moe_block.c) */
} molt_router_stats;
void molt_router_stats_add(molt_router_stats *s, const molt_router_cfg *c, const float *z,
                           const float *p, const float *w, const uint8_t *sel, int T);

/* Auxiliary losses (DESIGN §4) from GLOBAL stats g (summed over the whole
 * global batch), each multiplied by its coefficient:
 *   balance: coef * N * sum_i f_i P_i, f_i = count_i / (tokens * k), P_i = psum_i / tokens
 *            (k = top_k for topk/factor/expert_choice, 1 for switch, and the
 *             mean number of selected experts per token otherwise)
 *   dynmole: coef_ent * mean_t H_q(p_t) + coef_bal * N * sum_i f_i P_i with
 *            f_i = wsum_i / tokens (soft)
 *   zloss:   coef * mean_t logsumexp(z_t)^2
 *   pa:      pa_coef * pa_sum / tokens + pa_balance_coef * pabal_sum / tokens
 *            (FactorLLM; its gradient is molt_pa_loss's, in moe_block.c)
 * Returned values are the loss contributions of this layer. */
typedef struct {
    double balance, dynmole, zloss, pa;
} molt_aux_values;
typedef struct {
    int balance, dynmole, zloss; /* which are on */
    double balance_coef, dynmole_entropy_coef, dynmole_balance_coef, zloss_coef;
    int pa; /* FactorLLM (include/molt/pa.h; its gradient is applied in moe_block.c) */
    double pa_coef, pa_balance_coef;
} molt_aux_cfg;
molt_aux_values molt_aux_loss(const molt_aux_cfg *a, const molt_router_cfg *c,
                              const molt_router_stats *g);
/* Gradients of the auxiliary losses for THIS micro-batch's T tokens, given the
 * global stats g (f_i, mean-normalisers from g; f_i and the hard counts are
 * constants): ACCUMULATES dL/dp [T,N] into dp and dL/dz [T,N] into dz (zloss
 * and the entropy term act on z/p directly). */
void molt_aux_backward(const molt_aux_cfg *a, const molt_router_cfg *c,
                       const molt_router_stats *g, const float *z, const float *p, const float *w,
                       const uint8_t *sel, int T, float *dp, float *dz);

#endif
