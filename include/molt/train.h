/* train.h — the training loop: data-parallel steps over MPI, logging,
 * evaluation on the task suite, and the final weights.
 *
 * Step s consumes global samples [s·batch_size, (s+1)·batch_size); rank r of W
 * owns the contiguous slice r·(batch_size/W) … and splits it into micro-batches
 * of train.micro_batch. The loss is the mean over every counted target of the
 * global batch, so gradients (summed with MPI_Allreduce over `comm`) and the
 * loss curve do not depend on W. Run outputs go to log.run_dir:
 * config.ini (resolved), metrics.jsonl, eval.json, final.h5. */
#ifndef MOLT_TRAIN_H
#define MOLT_TRAIN_H
#include <mpi.h>

#include "molt/config.h"
#include "molt/model.h"

/* Run the whole job described by `c`; `config_text` is its resolved INI text.
 * resume: NULL (fresh), "" (the run's `latest` checkpoint) or a checkpoint
 * path. Checkpoints every checkpoint.every steps (and at the last step when
 * every > 0), and after the step in flight on SIGTERM/SIGUSR1, returning
 * MOLT_EXIT_RESUME then. Returns an exit code every rank agrees on, or
 * aborts the job (MPI_Abort) when one rank fails alone. */
int molt_train_run(const molt_config *c, const char *config_text, MPI_Comm comm,
                   const char *resume);

/* Per-task exact-match accuracy (greedy decoding equals teacher-forced argmax
 * at every answer position) over eval.samples held-out examples of each task
 * in eval.tasks, spread over the ranks of `comm`. acc[t] = -1 for tasks not
 * evaluated. Also the mean eval loss per counted target. */
int molt_eval_tasks(molt_model *m, const molt_config *c, MPI_Comm comm, double acc[MOLT_NTASKS],
                    double *eval_loss, double *route);
/* route (may be NULL): [MOLT_NTASKS * n_exp] counts of (task, expert) choices
 * at the model's report site (molt_moe_task_routing), summed over ranks. */

/* Feature-conditioned models (data.source = mmmb_lite or features): accuracy
 * per language group (en zh pt ar tr ru, then "other" for examples without a
 * language; -1 where there is none). Each question is multiple choice (mmmb_lite:
 * MOLT_MMMB_CHOICES candidates; a JSONL line with "choices"): every choice is
 * scored as the summed log-probability of its tokens after <bos> [features]
 * prompt, and the highest wins (ties: the lower index); an "answer" line is
 * right when greedy decoding reproduces it. mmmb_lite asks eval.samples
 * questions per language; a features file gives its first eval.samples lines
 * (0: all). eval_loss = mean NLL of the right answers' tokens. route (may be
 * NULL): [MOLT_NTASKS * n_exp] counts of (language, argmax expert) at the
 * xattn module, one per question, summed over ranks. Collective over comm. */
enum { MOLT_FEAT_GROUPS = 7 };
extern const char *const molt_feat_group_names[MOLT_FEAT_GROUPS];
int molt_eval_features(molt_model *m, const molt_config *c, MPI_Comm comm,
                       double acc[MOLT_FEAT_GROUPS], double *eval_loss, double *route);
/* I(group; expert) in bits of a [n_rows, n_exp] count table. */
double molt_routing_mutual_info(const double *route, int n_rows, int n_exp);

/* The run directory of a config: log.run_dir, or runs/<config file stem>. */
void molt_run_dir(const molt_config *c, char *out, size_t n);

#endif
