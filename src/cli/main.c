/* main.c — the `molt` command: initialises MPI, dispatches to a subcommand,
 * and turns a failure on any rank into a non-zero exit of the whole job. */
#define _POSIX_C_SOURCE 200809L
#include <malloc.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "molt/err.h"

typedef struct {
    const char *name, *args, *summary;
    int (*run)(int, char **, MPI_Comm);
} command;

static const command commands[] = {
    {"train", "CONFIG [--set k=v ...] [--resume [PATH]]", "train a model on MPI ranks",
     molt_cmd_train},
    {"config", "CONFIG [--set k=v ...] [--get KEY ...]", "print a resolved, checked config",
     molt_cmd_config},
    {"ckpt", "inspect|verify PATH", "show or check a checkpoint", molt_cmd_ckpt},
    {"eval", "CONFIG --ckpt PATH [--tasks FILE.jsonl ...]", "score weights on multiple choice",
     molt_cmd_eval},
    {"tokenize", "TEXT... --out SHARD.bin", "byte-tokenize UTF-8 text into an llm.c shard",
     molt_cmd_tokenize},
    {"import", "SAFETENSORS_DIR --out BASE.h5", "Hugging Face safetensors -> base weights",
     molt_cmd_import},
    {"export", "CKPT --out DIR [--merged]", "adapters (or a merged model) -> safetensors",
     molt_cmd_export},
    {"factorize", "CONFIG --ckpt DENSE.h5 --out MOE.h5", "FactorLLM: dense FFNs -> experts",
     molt_cmd_factorize},
    {"analyze", "CKPT [--json OUT.json]", "expert diversity, effective rank, router load",
     molt_cmd_analyze},
    {"collect", "SWEEP_DIR [--seed-key KEY]", "a sweep's results table (mean ± std)",
     molt_cmd_collect},
    {"metrics", "RUN_DIR loss|sites|load N|routing", "a run's logs as columns for plots",
     molt_cmd_metrics},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out) {
    fprintf(out, "usage: [mpirun -np N] molt COMMAND [ARGS]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-9s %-40s %s\n", commands[i].name, commands[i].args, commands[i].summary);
    fprintf(out, "\n'molt COMMAND --help' describes a command.\n"
                 "exit codes: 0 success, 2 bad input, 1 internal failure, %d checkpointed on a\n"
                 "signal (resume with --resume)\n",
            MOLT_EXIT_RESUME);
}

/* libgomp reads OMP_WAIT_POLICY when it loads, before main. Its default lets
 * idle OpenMP threads spin, which starves OpenBLAS's own threads between
 * kernels (measured: 50x slower steps on 2 cores). Unless the user chose a
 * policy, set PASSIVE and restart the program once, before MPI starts. */
static void ensure_passive_omp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the spinning policy rather than fail */
}

/* glibc serves blocks over 128 KiB (HDF5's ~1 MiB chunk buffers when
 * checksumming, per chunk) from fresh mmaps: every page of every chunk is
 * then faulted in anew and unmapped again. Measured on checkpoint saves:
 * page faults and copies were ~85% of the time; keeping such blocks in the
 * heap made a 563 MB save 6.7x faster (9.3 s -> 1.4 s). */
static void keep_large_blocks_in_heap(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int main(int argc, char **argv) {
    ensure_passive_omp(argv);
    keep_large_blocks_in_heap();
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return argc < 2 ? MOLT_ERR_INPUT : MOLT_OK;
    }
    const command *cmd = NULL;
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "molt: error: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return MOLT_ERR_INPUT;
    }
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "molt: error: MPI_Init failed\n");
        return MOLT_ERR_INTERNAL;
    }
    /* Errors come back as codes; the command decides, collectively or not,
     * how the job ends. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = cmd->run(argc - 1, argv + 1, MPI_COMM_WORLD);
    /* A command returns only codes that every rank agrees on (a collective
     * check, or the same deterministic input); a failure on one rank alone ends
     * the job with MPI_Abort inside the command, so nobody waits forever. */
    MPI_Finalize();
    return rc;
}
