/* commands.h — the subcommands of `molt`. Each takes the arguments after its
 * name (argv[0] is the subcommand), prints its own --help, runs inside an
 * initialised MPI world, and returns an exit code from molt/err.h. */
#ifndef MOLT_CLI_COMMANDS_H
#define MOLT_CLI_COMMANDS_H
#include <mpi.h>

int molt_cmd_train(int argc, char **argv, MPI_Comm comm);
int molt_cmd_tokenize(int argc, char **argv, MPI_Comm comm);
int molt_cmd_import(int argc, char **argv, MPI_Comm comm);
int molt_cmd_export(int argc, char **argv, MPI_Comm comm);
int molt_cmd_ckpt(int argc, char **argv, MPI_Comm comm);
int molt_cmd_eval(int argc, char **argv, MPI_Comm comm);

#endif
