/* model.h — the LLaMA-style decoder with LoRA (DESIGN §1–§2): parameters,
 * initialisation, and forward/backward over one micro-batch.
 *
 * Parameters live in two buffers: `frozen` (the base in peft mode) and
 * `train` (everything that trains); `grad` mirrors `train` exactly, so frozen
 * weights keep no gradient and no optimizer state, and zeroing, reducing and
 * stepping are one call over one buffer. A registry names every parameter with
 * its checkpoint path (Hugging Face names; DESIGN §7). Initialisation draws
 * parameter p from the stream (seed, INIT, p): independent of the layout. */
#ifndef MOLT_MODEL_H
#define MOLT_MODEL_H
#include <stddef.h>
#include <stdio.h>
#include <mpi.h>
#include <stdint.h>

#include "molt/config.h"
#include "molt/data.h"
#include "molt/dist.h"
#include "molt/router.h"

typedef struct {
    int V, d, L, H, Hkv, hd, dff, T_max, tied, mode, train_norms;
    unsigned lora_targets;
    int r;
    float lora_scale, dropout, eps;
    double theta;
    uint64_t seed; /* keys initialisation and dropout */
    /* mixture of experts (DESIGN §2–§4) */
    int placement;          /* molt_placement */
    unsigned moe_targets;   /* plugin projections */
    int n_exp[MOLT_MAX_LAYERS];
    int expert_dff;         /* ffn placement */
    float jitter;           /* switch: input jitter eps in training */
    molt_router_cfg router;
    molt_aux_cfg aux;
    int aux_mean;           /* aux of all sites averaged instead of summed */
    int experts_tr;         /* ffn experts train (full mode; factor router: factor.train) */
    int teacher;            /* pa with trained experts: a frozen dense FFN per layer */
    int pa_teacher_prev;    /* pa input of layer l > 0: layer l-1's teacher output */
    int ep, ep_rank;        /* expert parallelism: this rank holds experts e ≡ ep_rank (mod ep) */
    int dispatch;           /* molt_dispatch (config moe.dispatch) */
    int a2a_chunks;         /* parallel.a2a_chunks */
    double capacity_factor; /* moe.capacity_factor: > 0 caps tokens per expert (not expert_choice) */
    /* Parrot (DESIGN §4): feature tokens through the projector, and the xattn
     * MoE on them; its site is layer L's MLP slot, n_exp[L] its experts */
    int proj, feat_dim, n_ft;
    int xattn;
    float moe_weight;
} molt_dims;

/* A MoE site: one router and its experts. Slot p < MOLT_NPROJ is the plugin
 * site of projection p; slot MOLT_SITE_MLP is the FFN block's. Layer L (one
 * past the last) holds the xattn module's site in its MLP slot. */
#define MOLT_SITE_MLP MOLT_NPROJ
#define MOLT_SITE_SLOTS (MOLT_NPROJ + 1)

typedef enum {
    MOLT_PARAM_BASE = 0,   /* base weights (DESIGN §7 /base) */
    MOLT_PARAM_LORA = 1,   /* adapters: shared LoRA and LoRA experts (/adapters) */
    MOLT_PARAM_ROUTER = 2, /* /routers */
    MOLT_PARAM_EXPERT = 3, /* full FFN experts (/experts) */
    MOLT_PARAM_PROJ = 4    /* the feature projector (/projector), trained in every mode */
} molt_param_kind;

typedef struct {
    char path[160]; /* "base/model.layers.0.self_attn.q_proj.weight",
                       "adapters/model.layers.0.self_attn.q_proj/shared/lora_A" */
    float *w;       /* into frozen or train */
    float *g;       /* into grad; NULL when frozen */
    int rows, cols; /* cols = 0 for vectors */
    int trainable, decay, kind;
    int expert;    /* 1: one expert's tensor, held by its owner only (dist.h) */
    size_t offset; /* offset in its buffer */
} molt_param;

typedef struct {
    float *attn_norm, *ffn_norm;
    float *w[MOLT_NPROJ];             /* [out, in] */
    float *A[MOLT_NPROJ], *B[MOLT_NPROJ]; /* LoRA, NULL if not targeted */
    /* experts: router[slot] [N, in]; expert e's LoRA at eA[p] + e*r*in and
     * eB[p] + e*out*r; ffn expert e's weights at ew[p] + e*dffe*d (p = gate,
     * up, down). NULL where absent. */
    float *router[MOLT_SITE_SLOTS], *router_b;
    float *eA[MOLT_NPROJ], *eB[MOLT_NPROJ], *ew[MOLT_NPROJ];
    float *teacher[3]; /* pa with trained experts: the frozen dense gate, up, down */
} molt_layer_ptrs;

typedef struct {
    float *embed, *lm_head, *final_norm; /* lm_head NULL when tied */
    float *proj_w1, *proj_b1, *proj_w2, *proj_b2; /* mlp2x_gelu projector, NULL without */
    molt_layer_ptrs *layers; /* [L + 1]: layer L holds the xattn router and experts */
} molt_ptrs;

typedef struct molt_acts molt_acts;

/* Seconds spent in each phase of the MoE sites since the last reset. */
typedef struct {
    double route, comm, expert, combine;
} molt_moe_times;

typedef struct {
    molt_dims dims;
    molt_layout lay; /* a copy: communicators stay owned by the caller */
    float *frozen, *train, *grad;
    size_t n_frozen, n_train;
    size_t n_dense; /* train[0, n_dense) is replicated on every rank; the rest are
                       this rank's experts (all-reduced over edp_comm only) */
    molt_moe_times times;
    molt_param *params;
    int n_params;
    molt_ptrs w, g; /* g.* NULL for frozen weights */
    molt_acts *acts; /* activations for micro-batches up to B x T */
    int act_B, act_T;
    struct molt_moe_site **sites; /* [(L + 1) * MOLT_SITE_SLOTS], NULL where no site */
    int failed; /* error code of a failure inside forward/backward (reported), else 0 */
} molt_model;

int molt_dims_from_config(molt_dims *d, const molt_config *c);
/* Slots of m->sites (every loop over sites runs to this). */
static inline int molt_site_slots(const molt_model *m) {
    return (m->dims.L + 1) * MOLT_SITE_SLOTS;
}
/* Allocate parameters and activations for micro-batches of up to B x T, and
 * initialise from cfg->train.seed. `lay` (NULL: one rank) decides which
 * experts this rank holds; MoE sites exchange tokens over lay->ep_comm. */
int molt_model_create(molt_model *m, const molt_config *c, int B, int T, const molt_layout *lay);
void molt_model_free(molt_model *m);
/* Projection p's input and output widths. */
void molt_proj_shape(const molt_dims *d, int p, int *in, int *out);

/* Forward over b (b->n_seq <= B rows). `step` and `first` (the global index of
 * row 0) key the dropout masks; training=0 disables dropout. Returns the
 * summed loss over counted targets and sets *count; logits stay in the
 * activations (molt_model_logits). */
double molt_model_forward(molt_model *m, const molt_batch *b, long step, uint64_t first,
                          int training, long *count);
/* Backward of (loss_sum * scale) for the last forward; ACCUMULATES into m->grad. */
void molt_model_backward(molt_model *m, const molt_batch *b, float scale);
const float *molt_model_logits(const molt_model *m); /* [n_seq*T, V] of the last forward */

const molt_param *molt_model_find(const molt_model *m, const char *path);

/* lora.init = svd (PiSSA-style, src/nn/lora_init.c): shared LoRA and plugin
 * experts start from slices of their base weight's singular triplets
 * (expert e: triplets e·r … (e+1)·r − 1, by ScaLAPACK over comm), plugin
 * routers at zero, and the base is corrected so the output is unchanged.
 * Collective over comm; call once, after the base weights are loaded. */
int molt_lora_init_svd(molt_model *m, MPI_Comm comm);

/* Every parameter of the whole model as a one-rank job holds it (all
 * experts), in registry order, the same list on every rank: what a
 * checkpoint contains whatever the layout. expert = global expert id or -1.
 * The caller frees *out. */
typedef struct {
    char path[160];
    int rows, cols, trainable, kind, expert;
} molt_param_desc;
int molt_model_describe_all(const molt_model *m, molt_param_desc **out, int *n);

/* ---- mixture-of-experts statistics and auxiliary losses ----
 * Every forward adds each site's router statistics to its local sums. The
 * auxiliary losses are functions of the whole global batch, so their value and
 * gradients use `global` sums: molt_moe_stats_reduce sums the local ones over
 * `comm` (all data-parallel ranks) into global before the backward passes. */
int molt_model_has_moe(const molt_model *m);
void molt_moe_stats_reset(molt_model *m);
int molt_moe_stats_reduce(molt_model *m, MPI_Comm comm);
/* The auxiliary loss of the global batch (sum or mean over sites). */
double molt_moe_aux_loss(const molt_model *m);
/* Per-site diagnostics as JSON (load fractions, entropy, soft fraction,
 * experts per token) from the global sums; caller owns the cJSON. */
struct cJSON *molt_moe_diagnostics(const molt_model *m);
/* The site whose routing the evaluation reports per task: the first site of
 * the last MoE layer. Adds, for the last forward's non-padding tokens of
 * batch b, counts[task * n_exp + e] += 1 for each selected expert e. Returns
 * the site's expert count (0 without MoE) and its name in `name`. */
int molt_moe_task_routing(const molt_model *m, const molt_batch *b, double *counts, char *name,
                          size_t name_len);

/* moe.dispatch = auto (DESIGN §5): for each site, predict the per-forward-
 * and-backward communication time of alltoall (5(P-1)·alpha + 2·rows·(in+out)
 * ·4·(P-1)/P·beta, rows = tokens × expected experts per token) and replicate
 * (one all-gather per expert tensor and one reduce-scatter per trainable one:
 * (P-1)·alpha each + bytes·(P-1)/P·beta), and use the cheaper. Prints each
 * choice to `log` (NULL: quiet). Setup time only; every rank must call it
 * with the same constants. */
int molt_moe_auto_dispatch(molt_model *m, double alpha, double beta, FILE *log);
#endif
