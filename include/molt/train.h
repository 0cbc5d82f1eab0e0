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

/* The run directory of a config: log.run_dir, or runs/<config file stem>. */
void molt_run_dir(const molt_config *c, char *out, size_t n);

#endif
