/* optim.c — see include/molt/optim.h. */
#include "molt/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "molt/err.h"

int molt_adamw_create(molt_adamw *o, size_t n) {
    int rc = MOLT_OK;
    memset(o, 0, sizeof *o);
    MOLT_ALLOC(o->m, n);
    MOLT_ALLOC(o->v, n);
    o->n = n;
done:
    if (rc) molt_adamw_free(o);
    return rc;
}

void molt_adamw_free(molt_adamw *o) {
    free(o->m), free(o->v);
    memset(o, 0, sizeof *o);
}

double molt_lr_at(const molt_config *c, long s) {
    double lr = c->train.lr, lo = c->train.min_lr;
    long warm = c->train.warmup, total = c->train.steps;
    if (s < warm) return lr * (double)(s + 1) / (double)warm;
    long span = total - warm > 1 ? total - warm : 1;
    double p = (double)(s - warm) / (double)span;
    if (p > 1) p = 1;
    switch (c->train.schedule) {
    case MOLT_SCHED_COSINE: return lo + 0.5 * (lr - lo) * (1.0 + cos(3.14159265358979323846 * p));
    case MOLT_SCHED_LINEAR: return lr - (lr - lo) * p;
    default: return lr;
    }
}

double molt_grad_sumsq(const float *g, size_t n) {
    double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

float molt_clip_coef(double norm, double max_norm) {
    if (max_norm <= 0) return 1.0f;
    double coef = max_norm / (norm + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

void molt_adamw_step(molt_adamw *o, molt_model *m, const molt_config *c, double lr) {
    o->t++;
    const float b1 = (float)c->train.beta1, b2 = (float)c->train.beta2, eps = (float)c->train.eps;
    const double bc1 = 1.0 - pow(c->train.beta1, (double)o->t);
    const double bc2 = 1.0 - pow(c->train.beta2, (double)o->t);
    const float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    for (int i = 0; i < m->n_params; i++) {
        const molt_param *p = &m->params[i];
        if (!p->trainable) continue;
        size_t n = (size_t)p->rows * (p->cols ? p->cols : 1);
        float *w = p->w, *mm = o->m + p->offset, *vv = o->v + p->offset;
        const float *g = p->g;
        const float decay = p->decay ? (float)(1.0 - lr * c->train.weight_decay) : 1.0f;
#pragma omp parallel for schedule(static)
        for (size_t j = 0; j < n; j++) {
            mm[j] = b1 * mm[j] + (1.0f - b1) * g[j];
            vv[j] = b2 * vv[j] + (1.0f - b2) * g[j] * g[j];
            w[j] = w[j] * decay - step * mm[j] / (sqrtf(vv[j]) * rbc2 + eps);
        }
    }
}

void molt_optimizer_update(molt_adamw *o, molt_model *m, const molt_config *c, long s,
                           double grad_sumsq, double *norm, double *lr) {
    *norm = sqrt(grad_sumsq);
    float coef = molt_clip_coef(*norm, c->train.grad_clip);
    if (coef < 1.0f) {
        float *g = m->grad;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < m->n_train; i++) g[i] *= coef;
    }
    *lr = molt_lr_at(c, s);
    molt_adamw_step(o, m, c, *lr);
}
