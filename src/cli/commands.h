/* commands.h — the subcommands of `molt`. Each takes the arguments after its
 * name (argv[0] is the subcommand), prints its own --help, runs inside an
 * initialised MPI world, and returns an exit code from molt/err.h. */
#ifndef MOLT_CLI_COMMANDS_H
#define MOLT_CLI_COMMANDS_H
#include <mpi.h>

#include "molt/config.h"

int molt_cmd_train(int argc, char **argv, MPI_Comm comm);
int molt_cmd_tokenize(int argc, char **argv, MPI_Comm comm);
int molt_cmd_import(int argc, char **argv, MPI_Comm comm);
int molt_cmd_export(int argc, char **argv, MPI_Comm comm);
int molt_cmd_ckpt(int argc, char **argv, MPI_Comm comm);
int molt_cmd_eval(int argc, char **argv, MPI_Comm comm);
int molt_cmd_config(int argc, char **argv, MPI_Comm comm);
int molt_cmd_factorize(int argc, char **argv, MPI_Comm comm);
int molt_cmd_analyze(int argc, char **argv, MPI_Comm comm);
int molt_cmd_collect(int argc, char **argv, MPI_Comm comm);
int molt_cmd_metrics(int argc, char **argv, MPI_Comm comm);

/* Rank 0 resolves the configuration (file, overrides, validation: errors
 * printed once) into INI text with `resolve`; every rank then parses that
 * text into c. Returns rank 0's code on every rank, or this rank's parse
 * result (callers agree on it). *text is malloc'ed on every rank. */
typedef int (*molt_cli_resolve)(void *ctx, molt_config *c, char **text);
int molt_cli_config(MPI_Comm comm, molt_cli_resolve resolve, void *ctx, molt_config *c,
                    char **text);

#endif
