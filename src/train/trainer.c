/* trainer.c — the training loop (include/molt/train.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "molt/a2a.h"
#include "molt/ckpt.h"
#include "molt/coll.h"
#include "molt/data.h"
#include "molt/dist.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/metrics.h"
#include "molt/optim.h"
#include "molt/train.h"
#include "train/eval_common.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void molt_run_dir(const molt_config *c, char *out, size_t n) {
    if (c->log.run_dir[0]) {
        snprintf(out, n, "%s", c->log.run_dir);
        return;
    }
    const char *base = strrchr(c->source, '/');
    base = base ? base + 1 : (c->source[0] ? c->source : "run");
    char stem[MOLT_PATH_MAX];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    snprintf(out, n, "runs/%s", stem);
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

/* ---------------- evaluation ---------------- */

/* One task example laid out as a batch row (same layout as the data source). */
static int eval_row(const molt_config *c, int task, uint64_t index, molt_batch *b, int row) {
    int rc = MOLT_OK, len = 0, plen = 0, T = b->seq_len;
    int32_t *tok = NULL;
    MOLT_ALLOC(tok, T + 1);
    MOLT_TRY(molt_task_example(task, c->train.seed, MOLT_SPLIT_EVAL, index, tok, T + 1, &len,
                               &plen));
    molt_task_layout(tok, len, plen, 0, T, b->inputs + (long)row * T, b->targets + (long)row * T);
    b->task[row] = task;
done:
    free(tok);
    return rc;
}

int molt_eval_tasks(molt_model *m, const molt_config *c, MPI_Comm comm, double acc[MOLT_NTASKS],
                    double *eval_loss, double *route) {
    int rc = MOLT_OK, rank = 0, world = 1;
    molt_batch b = {0};
    long hits[MOLT_NTASKS] = {0}, seen[MOLT_NTASKS] = {0};
    double loss[2] = {0, 0}; /* summed loss, counted targets */
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    MOLT_MPI(MPI_Comm_size(comm, &world));
    const int B = m->act_B, T = m->act_T, V = m->dims.V, S = c->eval.samples;
    MOLT_TRY(molt_batch_alloc(&b, B, T));
    int tasks[MOLT_NTASKS], nt = 0;
    for (int t = 0; t < MOLT_NTASKS; t++)
        if (c->eval.tasks & (1u << t)) tasks[nt++] = t;
    /* item i = (task i / S, example i % S); rank r takes i ≡ r (mod world) */
    long total = (long)nt * S, mine = total > rank ? (total - rank + world - 1) / world : 0;
    long most = (total + world - 1) / world; /* rank 0's share */
    /* every rank runs the same number of forwards (possibly empty): MoE
     * sites exchange tokens inside each one */
    for (long k0 = 0; k0 < most; k0 += B) {
        int n = (int)(mine - k0 < B ? mine - k0 : B);
        if (n < 0) n = 0;
        b.n_seq = n;
        for (int j = 0; j < n; j++) {
            long i = rank + (k0 + j) * world;
            MOLT_TRY(eval_row(c, tasks[i / S], (uint64_t)(i % S), &b, j));
        }
        long cnt = 0;
        loss[0] += molt_model_forward(m, &b, 0, 0, 0, &cnt);
        if (m->failed) MOLT_FAIL(m->failed, "evaluation: the forward pass failed");
        loss[1] += (double)cnt;
        if (route) molt_moe_task_routing(m, &b, route, NULL, 0);
        const float *logits = molt_model_logits(m);
        for (int j = 0; j < n; j++) {
            int ok = 1;
            for (int t = 0; t < T && ok; t++) {
                int32_t y = b.targets[(long)j * T + t];
                if (y < 0) continue;
                const float *z = logits + ((long)j * T + t) * V;
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (z[v] > z[best]) best = v;
                ok = best == y;
            }
            hits[b.task[j]] += ok;
            seen[b.task[j]]++;
        }
    }
    MOLT_TRY(molt_eval_reduce(m, &b, comm, hits, seen, MOLT_NTASKS, loss, route, acc, eval_loss));
done:
    molt_batch_free(&b);
    return rc;
}

/* ---------------- training ---------------- */

typedef struct {
    const molt_config *c;
    MPI_Comm comm;
    int rank, world, local, micro, n_micro;
    molt_model model;
    molt_adamw opt;
    molt_data *data;
    molt_batch *mb; /* n_micro micro-batches of the current step */
    molt_metrics metrics;
    molt_layout lay;
    long start;                      /* first step to run (a resumed checkpoint's step) */
    unsigned long long n_train_all;  /* trainable parameters of the whole model, all ranks */
    unsigned long long n_frozen_all; /* frozen ones (replicated on every rank) */
    char ckpt_dir[MOLT_PATH_MAX + 8];
    double tsum[7]; /* per log window: route, a2a, expert, combine, reduce, other, step */
    char run_dir[MOLT_PATH_MAX];
} trainer;

static void trainer_free(trainer *t) {
    if (t->mb)
        for (int i = 0; i < t->n_micro; i++) molt_batch_free(&t->mb[i]);
    free(t->mb);
    molt_data_close(t->data);
    molt_adamw_free(&t->opt);
    molt_model_free(&t->model);
    if (t->metrics.f) molt_metrics_close(&t->metrics);
    molt_layout_free(&t->lay);
}

/* A check every rank makes identically (config + world size): no agreement
 * needed, and only rank 0 prints the message. */
#define LAYOUT_ERROR(...) (rank == 0 ? MOLT_ERROR(MOLT_ERR_INPUT, __VA_ARGS__) : MOLT_ERR_INPUT)

static int check_layout(const molt_config *c, int world, int rank, int *local, int *micro) {
    if (c->parallel.ep > world || world % c->parallel.ep)
        return LAYOUT_ERROR("parallel.ep = %d does not divide the %d ranks of the job "
                            "(ranks = dp x ep)",
                            c->parallel.ep, world);
    if (c->train.batch_size % world)
        return LAYOUT_ERROR("train.batch_size %d is not divisible by the %d ranks of the job",
                            c->train.batch_size, world);
    *local = c->train.batch_size / world;
    *micro = c->train.micro_batch ? c->train.micro_batch : *local;
    if (*micro > *local || *local % *micro)
        return LAYOUT_ERROR("train.micro_batch %d must divide the per-rank batch %d "
                            "(train.batch_size %d / %d ranks)",
                            *micro, *local, c->train.batch_size, world);
    if (c->moe.capacity_factor > 0 && c->moe.router != MOLT_ROUTER_EXPERT_CHOICE && *micro < *local)
        return LAYOUT_ERROR("moe.capacity_factor > 0 decides over the whole global batch in one "
                            "forward: train.micro_batch %d must equal the per-rank batch %d",
                            *micro, *local);
    return MOLT_OK;
}
#undef LAYOUT_ERROR

static int trainer_setup(trainer *t, const molt_config *c, const char *config_text, MPI_Comm comm,
                         const char *resume) {
    int rc = MOLT_OK;
    memset(t, 0, sizeof *t);
    t->c = c, t->comm = comm;
    MOLT_MPI(MPI_Comm_rank(comm, &t->rank));
    MOLT_MPI(MPI_Comm_size(comm, &t->world));
    molt_layout_single(&t->lay);
    if ((rc = check_layout(c, t->world, t->rank, &t->local, &t->micro))) goto done;
    t->n_micro = t->local / t->micro;
    MOLT_TRY(molt_layout_create(&t->lay, comm, c->parallel.ep)); /* same outcome on every rank */
    molt_run_dir(c, t->run_dir, sizeof t->run_dir);
    /* Local work that may fail on one rank only: agree before going on. */
    rc = molt_model_create(&t->model, c, t->micro, c->train.seq_len, &t->lay);
    if (!rc && c->model.init_from[0] && !resume)
        rc = molt_weights_load(c->model.init_from, &t->model, 0);
    if (!rc && t->model.dims.teacher && !resume) { /* pa's teacher must come from a file */
        int has = 0;
        rc = c->model.init_from[0] ? molt_weights_has(c->model.init_from, "/teacher", &has) : MOLT_OK;
        if (!rc && !has)
            rc = MOLT_ERROR(MOLT_ERR_INPUT,
                            "moe.aux = pa with factor.train = router,experts needs the dense FFN "
                            "as its frozen teacher: model.init_from = %s has no /teacher (make it "
                            "with molt factorize and the same settings)",
                            c->model.init_from[0] ? c->model.init_from : "(none)");
    }
    rc = molt_agree(comm, rc);
    if (!rc && c->lora.init == MOLT_LORA_INIT_SVD && !resume) /* collective */
        rc = molt_agree(comm, molt_lora_init_svd(&t->model, comm));
    if (!rc && c->moe.dispatch == MOLT_DISPATCH_AUTO && t->lay.ep > 1 &&
        molt_model_has_moe(&t->model)) {
        double alpha = 0, beta = 0;
        rc = molt_a2a_probe(t->lay.ep_comm, comm, &alpha, &beta);
        if (!rc) rc = molt_moe_auto_dispatch(&t->model, alpha, beta, t->rank == 0 ? stdout : NULL);
    }
    if (!rc) rc = molt_adamw_create(&t->opt, t->model.n_train);
    rc = molt_agree(comm, rc);
    if (!rc) { /* dense trainables are replicated; experts are split over ep_comm */
        unsigned long long mine = t->model.n_train - t->model.n_dense;
        if (t->lay.ep > 1)
            MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, &mine, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM,
                                   t->lay.ep_comm));
        t->n_train_all = t->model.n_dense + mine;
        t->n_frozen_all = t->model.n_frozen;
    }
    molt_ckpt_dir(c, t->run_dir, t->ckpt_dir, sizeof t->ckpt_dir);
    rc = molt_agree(comm, rc);
    if (!rc && resume) { /* every rank reads its own share of the same file */
        char path[MOLT_PATH_MAX + 64];
        if (resume[0]) snprintf(path, sizeof path, "%s", resume);
        else rc = molt_ckpt_latest(t->ckpt_dir, path, sizeof path);
        double tr = now_s();
        if (!rc) rc = molt_ckpt_load(path, c, &t->model, &t->opt, &t->start);
        tr = now_s() - tr;
        if (!rc && t->start > c->train.steps)
            rc = MOLT_ERROR(MOLT_ERR_INPUT, "%s is at step %ld, beyond train.steps %ld", path,
                            t->start, (long)c->train.steps);
        if (!rc && t->rank == 0)
            printf("molt: resumed from %s at step %ld (read in %.3f s)\n", path, t->start, tr);
    }
    if (!rc) rc = molt_data_open(&t->data, c, MOLT_SPLIT_TRAIN);
    if (!rc && c->data.source == MOLT_DATA_FEATURES && c->data.eval_path[0]) {
        molt_data *ev = NULL; /* the evaluation files: fail now, not after training */
        rc = molt_data_open(&ev, c, MOLT_SPLIT_EVAL);
        molt_data_close(ev);
    }
    if (!rc) {
        t->mb = molt_calloc_at((size_t)t->n_micro, sizeof *t->mb, __FILE__, __LINE__);
        if (!t->mb) rc = MOLT_ERR_INTERNAL;
        for (int i = 0; !rc && i < t->n_micro; i++)
            rc = molt_batch_alloc(&t->mb[i], t->micro, c->train.seq_len);
    }
    rc = molt_agree(comm, rc);
    if (!rc && t->rank == 0) {
        char path[MOLT_PATH_MAX + 16];
        rc = resume ? molt_metrics_resume(&t->metrics, t->run_dir, t->start)
                    : molt_metrics_open(&t->metrics, t->run_dir, 0);
        snprintf(path, sizeof path, "%s/config.ini", t->run_dir);
        if (!rc) rc = molt_write_text(path, config_text);
    }
    rc = molt_agree(comm, rc);
done:
    return rc;
}

/* Did a forward or backward fail on any rank? Every rank learns it here,
 * before anything is reduced or stepped, so the job ends on every rank with
 * the same code and no abort. A pass that fails on one rank goes on through
 * its collectives (a site that cannot, aborts the job itself), so all ranks
 * reach this check. The failing rank has reported the error; it adds where
 * the step stopped. */
static int pass_check(trainer *t, long s, const char *pass) {
    const int mine = t->model.failed;
    const int all = molt_agree(t->comm, mine);
    if (mine) {
        char where[96];
        snprintf(where, sizeof where, "the %s pass of step %ld (nothing of it applied)", pass,
                 s + 1);
        molt_trace_at(__FILE__, __LINE__, where);
    }
    return all;
}

/* One optimizer step. The LM loss is the mean over every counted target of the
 * global batch. Auxiliary router losses are functions of the whole global
 * batch's routing statistics, so those are summed over micro-batches and ranks
 * before any backward: with one micro-batch per rank the forward that trains
 * provides them; otherwise a routing pre-pass (one extra forward) does.
 * *agreed = 1 when a failure is known to every rank (no abort needed). */
static int train_step(trainer *t, long s, double *loss, double *aux, double *gnorm, double *lr,
                      int *agreed) {
    int rc = MOLT_OK;
    const molt_config *c = t->c;
    molt_model *m = &t->model;
    const int moe = molt_model_has_moe(m);
    const molt_dims *d = &m->dims;
    const int has_aux = moe && (d->aux.balance || d->aux.dynmole || d->aux.zloss || d->aux.pa);
    const int prepass = has_aux && (t->world > 1 || t->n_micro > 1);
    uint64_t first = (uint64_t)s * c->train.batch_size + (uint64_t)t->rank * t->local;
    long cnt[1] = {0};
    for (int i = 0; i < t->n_micro; i++) {
        MOLT_TRY(molt_data_fill(t->data, first + (uint64_t)i * t->micro, &t->mb[i]));
        const molt_batch *b = &t->mb[i];
        for (long j = 0; j < (long)b->n_seq * b->seq_len; j++) cnt[0] += b->targets[j] >= 0;
    }
    if (t->world > 1) MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, cnt, 1, MPI_LONG, MPI_SUM, t->comm));
    float scale = cnt[0] > 0 ? 1.0f / (float)cnt[0] : 0.0f;
    double lsum = 0;
    memset(m->grad, 0, sizeof(float) * m->n_train);
    if (moe) molt_moe_stats_reset(m);
    *agreed = 0;
    if (prepass) {
        for (int i = 0; i < t->n_micro; i++) {
            long n = 0;
            molt_model_forward(m, &t->mb[i], s, first + (uint64_t)i * t->micro, 1, &n);
        }
        if ((rc = pass_check(t, s, "routing pre-pass forward"))) goto agreed;
        MOLT_TRY(molt_moe_stats_reduce(m, t->comm));
    }
    for (int i = 0; i < t->n_micro; i++) {
        long n = 0;
        lsum += molt_model_forward(m, &t->mb[i], s, first + (uint64_t)i * t->micro, 1, &n);
        if ((rc = pass_check(t, s, "forward"))) goto agreed;
        if (has_aux && !prepass) MOLT_TRY(molt_moe_stats_reduce(m, t->comm));
        molt_model_backward(m, &t->mb[i], scale);
        if ((rc = pass_check(t, s, "backward"))) goto agreed;
    }
    if (moe && !has_aux) MOLT_TRY(molt_moe_stats_reduce(m, t->comm)); /* for diagnostics */
    double t0 = now_s();
    /* Replicated trainables over the world, each expert over the ranks
     * holding it (README, "Expert parallelism"); the global norm counts every
     * parameter once. */
    const size_t n_exp = m->n_train - m->n_dense;
    double sq[2] = {0, 0};
    if (t->world > 1) {
        MOLT_TRY(molt_allreduce_sum_f32(m->grad, m->n_dense, t->comm));
        if (t->lay.dp > 1 && n_exp)
            MOLT_TRY(molt_allreduce_sum_f32(m->grad + m->n_dense, n_exp, t->lay.edp_comm));
        MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, &lsum, 1, MPI_DOUBLE, MPI_SUM, t->comm));
    }
    sq[0] = molt_grad_sumsq(m->grad, m->n_dense);
    sq[1] = molt_grad_sumsq(m->grad + m->n_dense, n_exp);
    if (t->lay.ep > 1)
        MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, &sq[1], 1, MPI_DOUBLE, MPI_SUM, t->lay.ep_comm));
    t->tsum[4] += now_s() - t0;
    *loss = cnt[0] > 0 ? lsum / (double)cnt[0] : 0.0;
    *aux = has_aux ? molt_moe_aux_loss(m) : 0.0;
    molt_optimizer_update(&t->opt, m, c, s, sq[0] + sq[1], gnorm, lr);
done:
    return rc;
agreed:
    *agreed = 1;
    return rc;
}

/* Mean milliseconds per step over the last n steps by phase, on rank 0's
 * clocks: route (routers, capacity, plans), a2a (inside MPI and the
 * exchange's copies, including replicate's gathers), expert (expert GEMMs),
 * combine (gathers, weighted combine, scatters), reduce (gradient all-reduce
 * and norm), other (attention, dense layers, optimizer), step (the whole
 * step). Resets the window. */
static cJSON *step_times(trainer *t, long n) {
    static const char *const names[7] = {"route",  "a2a",   "expert", "combine",
                                         "reduce", "other", "step"};
    cJSON *o = NULL;
    if (t->rank == 0 && n > 0) {
        double v[7];
        memcpy(v, t->tsum, sizeof v);
        v[5] = v[6] - (v[0] + v[1] + v[2] + v[3] + v[4]);
        o = cJSON_CreateObject();
        for (int i = 0; i < 7; i++) cJSON_AddNumberToObject(o, names[i], 1e3 * v[i] / (double)n);
    }
    memset(t->tsum, 0, sizeof t->tsum);
    return o;
}

/* What an evaluation reports on: the tasks, or the languages of a feature benchmark. */
typedef struct {
    const char *const *names;
    int n;
    const char *what; /* "task" or "language" */
} eval_rows;

static cJSON *eval_json(const eval_rows *er, const double *acc, double eval_loss, double *mean) {
    cJSON *o = cJSON_CreateObject();
    double sum = 0;
    int n = 0;
    for (int t = 0; t < er->n; t++) {
        if (acc[t] < 0) continue;
        cJSON_AddNumberToObject(o, er->names[t], acc[t]);
        sum += acc[t], n++;
    }
    *mean = n ? sum / n : 0;
    cJSON_AddNumberToObject(o, "mean", *mean);
    cJSON_AddNumberToObject(o, "eval_loss", eval_loss);
    return o;
}

static void print_eval_table(const eval_rows *er, const double *acc, double eval_loss,
                             double mean) {
    printf("\n| %-10s | accuracy |\n|------------|----------|\n", er->what);
    for (int t = 0; t < er->n; t++)
        if (acc[t] >= 0) printf("| %-10s | %7.1f%% |\n", er->names[t], 100 * acc[t]);
    printf("| %-10s | %7.1f%% |\neval loss %.4f\n\n", "mean", 100 * mean, eval_loss);
    fflush(stdout);
}

/* The task x expert routing table: eval.json keeps the counts of (token,
 * expert) choices per task; the printed table shows each row's shares. */
static cJSON *routing_json(const eval_rows *er, const double *route, int nexp, const char *site,
                           int print) {
    cJSON *o = cJSON_CreateObject(), *rows = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", site);
    if (print)
        printf("routing at %s (share of each %s's expert choices):\n%-10s", site, er->what,
               er->what);
    for (int e = 0; print && e < nexp; e++) printf(" e%-4d", e);
    if (print) printf("\n");
    for (int t = 0; t < er->n; t++) {
        double tot = 0;
        for (int e = 0; e < nexp; e++) tot += route[t * nexp + e];
        if (tot <= 0) continue;
        cJSON *row = cJSON_CreateArray();
        if (print) printf("%-10s", er->names[t]);
        for (int e = 0; e < nexp; e++) {
            cJSON_AddItemToArray(row, cJSON_CreateNumber(route[t * nexp + e]));
            if (print) printf(" %.2f ", route[t * nexp + e] / tot);
        }
        if (print) printf("\n");
        cJSON_AddItemToObject(rows, er->names[t], row);
    }
    cJSON_AddItemToObject(o, "tasks", rows);
    /* how much the chosen expert tells about the task or language */
    double mi = molt_routing_mutual_info(route, er->n, nexp);
    cJSON_AddNumberToObject(o, "mutual_information_bits", mi);
    if (print) printf("mutual information (%s; expert): %.3f bits\n", er->what, mi);
    return o;
}

static int run_eval(trainer *t, long step, cJSON *line, int final) {
    int rc = MOLT_OK;
    double acc[MOLT_NTASKS], el, mean, *route = NULL;
    char site[96] = "";
    const int src = t->c->data.source;
    const int feat = src == MOLT_DATA_FEATURES || (src == MOLT_DATA_MMMB && t->model.dims.proj);
    const eval_rows er = feat ? (eval_rows){molt_feat_group_names, MOLT_FEAT_GROUPS, "language"}
                              : (eval_rows){molt_task_names, MOLT_NTASKS, "task"};
    /* eval.samples = 0: no evaluation, but a features file's "all of its lines" */
    if ((src != MOLT_DATA_TASKS && !feat) ||
        (t->c->eval.samples == 0 && src != MOLT_DATA_FEATURES))
        return MOLT_OK;
    int nexp = molt_moe_task_routing(&t->model, NULL, NULL, site, sizeof site);
    if (nexp) MOLT_ALLOC(route, MOLT_NTASKS * nexp);
    if (feat) MOLT_TRY(molt_eval_features(&t->model, t->c, t->comm, acc, &el, route));
    else MOLT_TRY(molt_eval_tasks(&t->model, t->c, t->comm, acc, &el, route));
    if (t->rank != 0) goto done;
    cJSON *e = eval_json(&er, acc, el, &mean);
    if (nexp) cJSON_AddItemToObject(e, "routing", routing_json(&er, route, nexp, site, final));
    if (line) cJSON_AddItemToObject(line, "eval", e);
    if (final) {
        char path[MOLT_PATH_MAX + 16], *s = NULL;
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "step", (double)step);
        cJSON_AddNumberToObject(root, "trainable", (double)t->n_train_all);
        cJSON_AddNumberToObject(root, "frozen", (double)t->n_frozen_all);
        cJSON_AddItemToObject(root, "tasks", line ? cJSON_Duplicate(e, 1) : e);
        s = cJSON_Print(root);
        snprintf(path, sizeof path, "%s/eval.json", t->run_dir);
        rc = s ? molt_write_text(path, s) : MOLT_ERR_INTERNAL;
        cJSON_free(s);
        cJSON_Delete(root);
        print_eval_table(&er, acc, el, mean);
    } else if (!line) {
        cJSON_Delete(e);
    }
done:
    free(route);
    return rc;
}

/* SIGTERM / SIGUSR1 (a scheduler's warning before a time limit or a
 * preemption): the one piece of global state molt has, because a signal
 * handler can only set a flag. The step loop checks it after every step. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
}

static int install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
        return MOLT_ERROR(MOLT_ERR_INTERNAL, "cannot install the SIGTERM/SIGUSR1 handlers");
    return MOLT_OK;
}

/* Did any rank get a stop signal? (every rank must agree on stopping) */
static int stop_requested(MPI_Comm comm, int *sig) {
    int rc = MOLT_OK, v = (int)stop_signal;
    MOLT_MPI(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, comm));
    *sig = v;
done:
    return rc;
}

#ifdef MOLT_FAULT_INJECTION
/* Test builds: MOLT_FAULT_HOLD_STEP=n holds the job after step n until a stop
 * signal arrives, so that a signal test knows exactly where the job stands:
 * rank 0 creates MOLT_FAULT_HOLD_FILE (if set) and waits for SIGTERM/SIGUSR1;
 * the other ranks wait for it in the stop check that follows.
 * MOLT_FAULT_HOLD_RUN=text holds only a run whose run dir contains text (one
 * point of a sweep). Ten minutes without a signal is an error. */
static int fault_hold(const trainer *t, long step) {
    const char *hs = getenv("MOLT_FAULT_HOLD_STEP"), *hf = getenv("MOLT_FAULT_HOLD_FILE");
    const char *hr = getenv("MOLT_FAULT_HOLD_RUN");
    if (t->rank != 0 || !hs || atol(hs) != step || (hr && !strstr(t->run_dir, hr)))
        return MOLT_OK;
    if (hf) {
        char text[64];
        snprintf(text, sizeof text, "held after step %ld\n", step);
        int rc = molt_write_text(hf, text);
        if (rc) return rc;
    }
    for (long i = 0; !stop_signal; i++) {
        if (i == 60000)
            return MOLT_ERROR(MOLT_ERR_INTERNAL, "test hook: held after step %ld for 10 minutes "
                              "and no stop signal came (MOLT_FAULT_HOLD_STEP)", step);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return MOLT_OK;
}
#endif

int molt_train_run(const molt_config *c, const char *config_text, MPI_Comm comm,
                   const char *resume) {
    int rc = MOLT_OK;
    trainer t;
    cJSON *line = NULL;
    rc = trainer_setup(&t, c, config_text, comm, resume);
    if (!rc) rc = molt_agree(comm, install_signals());
    if (rc) goto done;
    if (t.rank == 0) {
        char lay[512];
        molt_layout_describe(&t.lay, lay, sizeof lay);
        printf("molt: %d rank(s) x %d micro-batch(es) of %d, %llu trainable / %llu frozen "
               "parameters, run dir %s\nmolt: layout %s\n",
               t.world, t.n_micro, t.micro, t.n_train_all, t.n_frozen_all, t.run_dir, lay);
        fflush(stdout);
    }
    const long steps = c->train.steps;
    const double tok_per_step = (double)c->train.batch_size * c->train.seq_len;
    double t0 = now_s(), tlog = t0;
    long slog = t.start;
    for (long s = t.start; s < steps; s++) {
        double loss = 0, aux = 0, gnorm = 0, lr = 0, ts = now_s();
        memset(&t.model.times, 0, sizeof t.model.times);
        int agreed = 0;
        rc = train_step(&t, s, &loss, &aux, &gnorm, &lr, &agreed);
        if (rc && !agreed) molt_abort_job(comm, rc);
        if (rc) goto done;
        t.tsum[0] += t.model.times.route, t.tsum[1] += t.model.times.comm;
        t.tsum[2] += t.model.times.expert, t.tsum[3] += t.model.times.combine;
        t.tsum[6] += now_s() - ts;
        int last = s + 1 == steps, do_log = (s + 1) % c->log.every == 0 || last || s == 0;
        int do_eval = c->eval.every > 0 && (s + 1) % c->eval.every == 0 && !last;
        if (do_log || do_eval) {
            double tn = now_s(), elapsed = tn - t0;
            double tok_s = tok_per_step * (double)(s + 1 - slog) / (tn - tlog > 1e-9 ? tn - tlog : 1e-9);
            cJSON *times = step_times(&t, s + 1 - slog);
            tlog = tn, slog = s + 1;
            if (t.rank == 0) {
                line = cJSON_CreateObject();
                cJSON_AddNumberToObject(line, "step", (double)(s + 1));
                cJSON_AddNumberToObject(line, "loss", loss);
                if (molt_model_has_moe(&t.model)) {
                    cJSON_AddNumberToObject(line, "aux_loss", aux);
                    cJSON_AddItemToObject(line, "moe", molt_moe_diagnostics(&t.model));
                }
                cJSON_AddNumberToObject(line, "lr", lr);
                cJSON_AddNumberToObject(line, "grad_norm", gnorm);
                cJSON_AddNumberToObject(line, "tokens", tok_per_step * (double)(s + 1));
                cJSON_AddNumberToObject(line, "tok_s", tok_s);
                cJSON_AddItemToObject(line, "time_ms", times);
                times = NULL;
                cJSON_AddNumberToObject(line, "elapsed", elapsed);
            }
            if (do_eval) {
                rc = run_eval(&t, s + 1, line, 0);
                if (rc) molt_abort_job(comm, rc);
                if (rc) goto done;
            }
            if (t.rank == 0) {
                char eta[32], el[32];
                fmt_duration(eta, sizeof eta,
                             elapsed / (double)(s + 1 - t.start) * (double)(steps - s - 1));
                fmt_duration(el, sizeof el, elapsed);
                char auxs[32] = "";
                if (molt_model_has_moe(&t.model)) snprintf(auxs, sizeof auxs, " | aux %.4f", aux);
                printf("step %6ld/%ld | loss %.4f%s | lr %.2e | gnorm %.3f | %7.0f tok/s | %s | ETA "
                       "%s\n",
                       s + 1, steps, loss, auxs, lr, gnorm, tok_s, el, eta);
                fflush(stdout);
                rc = molt_metrics_write(&t.metrics, line);
                cJSON_Delete(line);
                line = NULL;
                if (rc) molt_abort_job(comm, rc);
                if (rc) goto done;
            }
        }
        int sig = 0;
#ifdef MOLT_FAULT_INJECTION
        if ((rc = fault_hold(&t, s + 1))) molt_abort_job(comm, rc);
        if (rc) goto done;
#endif
        if ((rc = stop_requested(comm, &sig))) goto done;
        int every = c->checkpoint.every;
        if (sig || (every > 0 && ((s + 1) % every == 0 || last))) {
            double tc = now_s();
            if ((rc = molt_ckpt_save(t.ckpt_dir, c, config_text, &t.model, &t.opt, s + 1)))
                goto done;
            tc = now_s() - tc;
            if (t.rank == 0) {
                char f[MOLT_PATH_MAX + 48];
                struct stat st;
                snprintf(f, sizeof f, "%s/step_%08ld.h5", t.ckpt_dir, s + 1);
                double mb = stat(f, &st) == 0 ? (double)st.st_size / 1e6 : 0;
                printf("molt: checkpoint step %ld -> %s (%.1f MB in %.3f s, %.1f MB/s)\n", s + 1,
                       f, mb, tc, tc > 0 ? mb / tc : 0);
            }
        }
        if (sig) {
            if (t.rank == 0)
                printf("molt: %s received: checkpointed at step %ld; exit %d (resume with "
                       "--resume)\n",
                       sig == SIGTERM ? "SIGTERM" : "SIGUSR1", s + 1, MOLT_EXIT_RESUME);
            fflush(stdout);
            rc = MOLT_EXIT_RESUME;
            goto done;
        }
    }
    rc = run_eval(&t, steps, NULL, 1);
    if (!rc) {
        char path[MOLT_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/final.h5", t.run_dir);
        rc = molt_weights_save_dist(path, &t.model, config_text, steps);
        if (!rc && t.rank == 0) printf("molt: final weights -> %s\n", path);
    }
    rc = molt_agree(comm, rc);
done:
    cJSON_Delete(line);
    trainer_free(&t);
    return rc;
}
