/* mceval.h — `molt eval`: multiple-choice evaluation of trained weights
 * (DESIGN §8, as lm-eval-harness scores loglikelihood tasks), and the run
 * that loads a weights file and reports it with the built-in task suite.
 *
 * Input: JSONL, one example per line,
 *     {"context": "...", "choices": ["...", ...], "label": 1}
 * context a string (may be empty), choices a non-empty array of non-empty
 * strings, label an integer index into choices. Other keys are ignored, and
 * so are blank lines. Anything else is MOLT_ERR_INPUT naming FILE:LINE.
 *
 * Scoring. Choice j of an example is the byte-token sequence
 *     <bos> context-bytes choice-bytes
 * and its score is the summed log-probability (nats) of the choice's tokens,
 * each predicted from everything before it. acc takes the argmax of the sums,
 * acc_norm the argmax of sum / (choice length in bytes); ties go to the lower
 * index. When the model's input (the sequence without its last token) would
 * exceed model.max_seq_len, the oldest context bytes are dropped (the <bos> is
 * kept, a multi-byte UTF-8 character may be cut); a choice longer than
 * model.max_seq_len bytes cannot be scored and is refused at parse time.
 *
 * Parallel run. The (example, choice) sequences are numbered in file order and
 * sequence s goes to rank s mod W. Every rank runs the same number of
 * forwards, the short ones padded with empty batches, because MoE sites
 * exchange tokens among the ranks of ep_comm inside each forward. Forwards
 * are inference: no dropout, no router jitter, no capacity cut. With every
 * router but expert_choice a sequence's score does not depend on which
 * sequences share its forward, so results do not depend on the layout. */
#ifndef MOLT_MCEVAL_H
#define MOLT_MCEVAL_H
#include <mpi.h>
#include <stddef.h>
#include <stdio.h>

#include "molt/config.h"
#include "molt/model.h"

typedef struct {
    char *context;   /* UTF-8, NUL-terminated */
    char **choices;  /* n_choices non-empty strings */
    int n_choices, label;
    long line;       /* 1-based line in its file */
} molt_mc_example;

typedef struct {
    char name[MOLT_PATH_MAX]; /* the path as given */
    molt_mc_example *ex;
    int n;
} molt_mc_file;

/* One scored choice. */
typedef struct {
    double loglik; /* summed log-probability of the choice's tokens */
    int tokens;    /* tokens scored (the byte tokenizer: = bytes) */
    int bytes;     /* the choice's length in bytes */
    int dropped;   /* context bytes dropped from the left to fit max_seq_len */
} molt_mc_score;

/* Read a whole file into a malloc'ed, NUL-terminated buffer (caller frees).
 * MOLT_ERR_INPUT naming the file if it cannot be read. */
int molt_mc_read_text(const char *path, char **text, size_t *len);
/* Parse JSONL `text` of `len` bytes into f (f->name = name). A choice of more
 * than max_seq_len bytes is refused. Errors: MOLT_ERR_INPUT, "NAME:LINE: …". */
int molt_mc_parse(molt_mc_file *f, const char *name, const char *text, size_t len,
                  int max_seq_len);
void molt_mc_free(molt_mc_file *f);

/* Choices of all files, in file order: the number of sequences to score. */
long molt_mc_count(const molt_mc_file *files, int n_files);
/* The model input length of the longest sequence, capped at max_seq_len. */
int molt_mc_longest(const molt_mc_file *files, int n_files, int max_seq_len);

/* Score every choice of every file (collective over `comm`: the ranks of
 * m->lay.world). m's activations (act_B x act_T) set the forward size; act_T
 * must be >= molt_mc_longest. out[s] for sequence s is complete on rank 0
 * (other ranks: their own sequences only). A failure inside a forward is
 * returned; the caller must end the job, peers may wait in an exchange. */
int molt_mc_score_all(molt_model *m, const molt_mc_file *files, int n_files, MPI_Comm comm,
                      molt_mc_score *out);

/* acc and acc_norm predictions from n scores (ties: the lower index). */
void molt_mc_predict(const molt_mc_score *sc, int n, int *pred, int *pred_norm);

/* Write one JSON line per example, in file order:
 *   {"file", "index", "label", "pred", "pred_norm", "acc", "acc_norm",
 *    "choices": [{"loglik", "tokens", "bytes"}, ...]}
 * index = the example's 0-based position in its file. */
int molt_mc_write_samples(FILE *out, const char *out_name, const molt_mc_file *files,
                          int n_files, const molt_mc_score *sc);

/* What `molt eval` was asked to do. */
typedef struct {
    const char *ckpt;         /* weights: final.h5 or a training checkpoint */
    const char *const *tasks; /* multiple-choice JSONL files */
    int n_tasks;
    const char *log_samples;  /* per-example JSONL output, or NULL */
    int batch;                /* sequences per forward on each rank; 0 = from the config */
} molt_eval_opts;

/* The whole `molt eval` job, collective over `comm`: check that the weights
 * file's config attribute agrees with `c` on every key that shapes the
 * parameters (model.* but init_from, mode and max_seq_len; lora.r,
 * lora.targets, moe.placement, moe.targets, moe.num_experts, moe.router,
 * moe.expert_d_ff; else MOLT_ERR_INPUT naming the key; other model, lora and
 * moe differences are printed as notes), load the weights (each rank its own
 * experts), score the JSONL files, run the built-in task suite when
 * data.source = tasks and eval.samples > 0 (at train.seq_len, as the
 * trainer's evaluation) or, for a model with model.projector, the
 * per-language multiple choice of mmmb_lite or the features file
 * (molt_eval_features, with the xattn routing table), print the tables on rank 0 and write --log-samples
 * (PATH.tmp, then renamed). Returns a code every rank agrees on, or ends the
 * job with MPI_Abort when a rank fails alone inside the scoring. */
int molt_eval_run(const molt_config *c, const molt_eval_opts *o, MPI_Comm comm);

#endif
