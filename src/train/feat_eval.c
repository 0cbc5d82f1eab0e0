/* feat_eval.c — evaluation of feature-conditioned models (mmmb_lite and
 * data.source = features): per-language multiple-choice accuracy, the eval
 * loss of the right answers, and the language × expert routing table of the
 * xattn module (include/molt/train.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/features.h"
#include "molt/data.h"
#include "molt/err.h"
#include "molt/mmmb.h"
#include "molt/train.h"
#include "train/eval_common.h"

const char *const molt_feat_group_names[MOLT_FEAT_GROUPS] = {"en", "zh", "pt",   "ar",
                                                             "tr", "ru", "other"};

/* The questions: mmmb_lite's evaluation set, or the eval (else train) file. */
typedef struct {
    molt_mmmb mm;
    int is_mmmb;
    molt_feature_set *fs;
    long n; /* items */
    int S;  /* mmmb: items per language */
} question_set;

static int questions_open(question_set *q, const molt_config *c) {
    int rc = MOLT_OK;
    memset(q, 0, sizeof *q);
    if (c->data.source == MOLT_DATA_MMMB) {
        q->is_mmmb = 1;
        MOLT_TRY(molt_mmmb_init(&q->mm, c));
        q->S = c->eval.samples;
        q->n = (long)MOLT_MMMB_LANGS * q->S;
    } else {
        int ev = c->data.eval_path[0] != 0;
        MOLT_TRY(molt_feature_set_open(&q->fs, ev ? c->data.eval_features : c->data.train_features,
                                       ev ? c->data.eval_path : c->data.train_path,
                                       c->model.feat_tokens, c->model.feat_dim, c->train.seq_len));
        q->n = molt_feature_set_size(q->fs);
        if (c->eval.samples > 0 && q->n > c->eval.samples) q->n = c->eval.samples;
    }
done:
    return rc;
}

static void questions_close(question_set *q) {
    molt_mmmb_free(&q->mm);
    molt_feature_set_close(q->fs);
}

/* Item k: its choices, the right one, its group (language or "other"). */
static void item_info(const question_set *q, long k, int *n_choices, int *label, int *group) {
    if (q->is_mmmb) {
        molt_mmmb_item it = molt_mmmb_eval_item(&q->mm, (int)(k / q->S), (uint64_t)(k % q->S));
        *n_choices = MOLT_MMMB_CHOICES, *label = it.label, *group = it.lang;
        return;
    }
    const molt_feature_example *e = molt_feature_set_example(q->fs, k);
    *n_choices = e->n_choices, *label = e->label;
    *group = e->lang >= 0 ? e->lang : MOLT_FEAT_GROUPS - 1;
}

/* Row of item k scored with choice j: no <eos>, targets on the choice only. */
static int item_row(const question_set *q, long k, int j, molt_batch *b, int row) {
    const int T = b->seq_len;
    int32_t *in = b->inputs + (long)row * T, *tg = b->targets + (long)row * T;
    float *feat = b->feat + (long)row * b->n_ft * b->feat_dim;
    if (q->is_mmmb) {
        int lang = (int)(k / q->S);
        uint64_t i = (uint64_t)(k % q->S);
        molt_mmmb_item it = molt_mmmb_eval_item(&q->mm, lang, i);
        return molt_mmmb_row(&q->mm, &it, MOLT_SPLIT_EVAL, i * MOLT_MMMB_LANGS + (uint64_t)lang,
                             it.choice[j], 0, T, in, tg, feat, &b->plen[row]);
    }
    return molt_feature_set_row_with(q->fs, k, j, T, in, tg, feat, &b->plen[row]);
}

int molt_eval_features(molt_model *m, const molt_config *c, MPI_Comm comm,
                       double acc[MOLT_FEAT_GROUPS], double *eval_loss, double *route) {
    int rc = MOLT_OK, rank = 0, world = 1;
    question_set q;
    molt_batch b = {0};
    long *row_item = NULL;
    int *row_choice = NULL, *row_gold = NULL, *exact = NULL; /* exact: answer lines */
    double *ll = NULL;                                       /* [my items * max choices] */
    long hits[MOLT_FEAT_GROUPS] = {0}, seen[MOLT_FEAT_GROUPS] = {0};
    double loss[2] = {0, 0};
    memset(&q, 0, sizeof q);
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    MOLT_MPI(MPI_Comm_size(comm, &world));
    MOLT_TRY(questions_open(&q, c));
    const int B = m->act_B, T = m->act_T, V = m->dims.V;
    MOLT_TRY(molt_batch_alloc(&b, B, T));
    MOLT_TRY(molt_batch_features(&b, m->dims.n_ft, m->dims.feat_dim));
    /* this rank's items k ≡ rank (mod world), every choice a row */
    long mine = q.n > rank ? (q.n - rank + world - 1) / world : 0, rows = 0;
    int cmax = 1;
    for (long i = 0; i < mine; i++) {
        int nc, lb, gr;
        item_info(&q, rank + i * world, &nc, &lb, &gr);
        rows += nc;
        if (nc > cmax) cmax = nc;
    }
    MOLT_ALLOC(row_item, rows > 0 ? rows : 1);
    MOLT_ALLOC(row_choice, rows > 0 ? rows : 1);
    MOLT_ALLOC(row_gold, rows > 0 ? rows : 1);
    MOLT_ALLOC(ll, mine * cmax + 1);
    MOLT_ALLOC(exact, mine + 1);
    long r = 0;
    for (long i = 0; i < mine; i++) {
        int nc, lb, gr;
        item_info(&q, rank + i * world, &nc, &lb, &gr);
        for (int j = 0; j < nc; j++, r++)
            row_item[r] = i, row_choice[r] = j, row_gold[r] = j == lb;
    }
    long most = rows;
    MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_LONG, MPI_MAX, comm));
    /* every rank runs the same number of forwards: the MoE sites exchange inside */
    for (long r0 = 0; r0 < most; r0 += B) {
        int n = (int)(rows - r0 < B ? rows - r0 : B);
        if (n < 0) n = 0;
        b.n_seq = n;
        for (int j = 0; j < n; j++) {
            long k = rank + row_item[r0 + j] * world;
            MOLT_TRY(item_row(&q, k, row_choice[r0 + j], &b, j));
            int nc, lb, gr;
            item_info(&q, k, &nc, &lb, &gr);
            b.task[j] = row_gold[r0 + j] ? gr : -1; /* route once per question */
        }
        long cnt = 0;
        molt_model_forward(m, &b, 0, 0, 0, &cnt);
        if (m->failed) MOLT_FAIL(m->failed, "evaluation: the forward pass failed");
        if (route) molt_moe_task_routing(m, &b, route, NULL, 0);
        const float *logits = molt_model_logits(m);
        for (int j = 0; j < n; j++) {
            long c0 = 0;
            int greedy;
            double s = molt_row_loglik(logits + (long)j * T * V, b.targets + (long)j * T, T, V, &c0,
                                       &greedy);
            long ri = r0 + j;
            ll[row_item[ri] * cmax + row_choice[ri]] = s;
            if (row_gold[ri]) loss[0] -= s, loss[1] += (double)c0;
            if (row_gold[ri]) exact[row_item[ri]] = greedy;
        }
    }
    for (long i = 0; i < mine; i++) {
        int nc, lb, gr, ok;
        item_info(&q, rank + i * world, &nc, &lb, &gr);
        if (nc == 1) { /* an answer line: greedy decoding gives the answer */
            ok = exact[i];
        } else {
            int best = 0;
            for (int j = 1; j < nc; j++)
                if (ll[i * cmax + j] > ll[i * cmax + best]) best = j;
            ok = best == lb;
        }
        hits[gr] += ok, seen[gr]++;
    }
    MOLT_TRY(
        molt_eval_reduce(m, &b, comm, hits, seen, MOLT_FEAT_GROUPS, loss, route, acc, eval_loss));
done:
    free(row_item), free(row_choice), free(row_gold), free(ll), free(exact);
    molt_batch_free(&b);
    questions_close(&q);
    return rc;
}

double molt_routing_mutual_info(const double *route, int n_rows, int n_exp) {
    double tot = 0, mi = 0, *pe = calloc((size_t)n_exp, sizeof *pe);
    if (!pe) return NAN;
    for (int l = 0; l < n_rows; l++)
        for (int e = 0; e < n_exp; e++)
            tot += route[l * n_exp + e], pe[e] += route[l * n_exp + e];
    for (int l = 0; l < n_rows && tot > 0; l++) {
        double pl = 0;
        for (int e = 0; e < n_exp; e++)
            pl += route[l * n_exp + e];
        for (int e = 0; e < n_exp; e++) {
            double p = route[l * n_exp + e] / tot;
            if (p > 0) mi += p * log2(p / ((pl / tot) * (pe[e] / tot)));
        }
    }
    free(pe);
    return mi;
}
