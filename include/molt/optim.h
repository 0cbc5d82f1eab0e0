/* optim.h — AdamW (decoupled weight decay, bias correction), learning-rate
 * schedules and global-norm clipping over the model's trainable buffer.
 * Moments exist only for trainable parameters (m->n_train floats each). */
#ifndef MOLT_OPTIM_H
#define MOLT_OPTIM_H
#include "molt/config.h"
#include "molt/model.h"

typedef struct {
    float *m, *v;
    size_t n;
    long t; /* steps taken */
} molt_adamw;

int molt_adamw_create(molt_adamw *o, size_t n);
void molt_adamw_free(molt_adamw *o);

/* Learning rate at step s (0-based): linear warmup over train.warmup steps to
 * train.lr ((s+1)/warmup), then cosine | linear | constant decay to
 * train.min_lr at train.steps. */
double molt_lr_at(const molt_config *c, long s);

/* Sum of squares of the gradient buffer (double accumulation). */
double molt_grad_sumsq(const float *g, size_t n);
/* Scale gradients so their global norm is at most max_norm (> 0), with
 * PyTorch's clip_grad_norm_ rule coef = max/(norm + 1e-6) applied when < 1.
 * Returns the coefficient applied (1 if none). */
float molt_clip_coef(double norm, double max_norm);

/* One AdamW step over every trainable parameter of the model: weight decay on
 * matrices only (p->decay), none on norm weights. */
void molt_adamw_step(molt_adamw *o, molt_model *m, const molt_config *c, double lr);

/* The whole update of step s (0-based) after gradients are summed over ranks:
 * global norm from `grad_sumsq` (the sum of squares of every trainable
 * gradient, each counted once), clipping by train.grad_clip, then AdamW at
 * molt_lr_at(s). Sets *norm and *lr for logging. */
void molt_optimizer_update(molt_adamw *o, molt_model *m, const molt_config *c, long s,
                           double grad_sumsq, double *norm, double *lr);

#endif
