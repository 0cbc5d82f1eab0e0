/* pa.h — FactorLLM's router losses (DESIGN §4 `pa`), for one micro-batch of
 * T tokens and N experts, normalised by the global token count `tokens`.
 *   Prior-Approximate: the pseudo-label m_t is k-hot on the k experts whose
 *     error ell[t,e] = mean_d (E_e(h_t) − T(h_t)/(N/k))² is lowest (ties: the
 *     lower index); P = clip(softmax(z_t)), Q = clip(softmax(m_t)), clipped to
 *     [1e-7, 1 − 1e-7];  L_PA = pa_coef · (1/tokens) Σ_t Σ_i P_i log(P_i/Q_i).
 *     m is a constant; clipped entries pass no gradient (as torch.clamp).
 *   balance: L_B = bal_coef · (1/(tokens·N)) Σ_t Σ_i mask_ti · softmax(z_t)_i,
 *     mask = the router's top-k selection (a constant): FactorLLM's
 *     mean(topk_mask ⊙ softmax(g)).
 * z are the router logits (bias included); scratch holds 2N doubles.
 * Returns both values; ACCUMULATES dL/dz into dz[T,N]. */
#ifndef MOLT_PA_H
#define MOLT_PA_H
#include <stdint.h>

typedef struct {
    double pa_coef, bal_coef;
    int k; /* experts per token (moe.top_k clamped to [1, N]) */
} molt_pa_cfg;

typedef struct {
    double pa, balance;
} molt_pa_values;

molt_pa_values molt_pa_loss(const molt_pa_cfg *c, const float *z, const float *ell,
                            const uint8_t *sel, int T, int N, double tokens, double *scratch,
                            float *dz);

#endif
