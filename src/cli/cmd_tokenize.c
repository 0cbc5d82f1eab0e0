/* cmd_tokenize.c — `molt tokenize TEXT... --out SHARD.bin`: UTF-8 text to an
 * llm.c uint16 shard with the byte tokenizer (DESIGN §8). Each file becomes
 * <bos> bytes <eos>; the files are concatenated in the order given.
 *
 * The work is serial I/O, so rank 0 does it; the other ranks wait for its
 * exit code (a broadcast) and return the same one, as main.c expects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/data.h"
#include "molt/err.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: molt tokenize TEXT... --out SHARD.bin\n"
            "\n"
            "Byte-tokenize UTF-8 text files into one llm.c token shard (magic %d,\n"
            "version 1, uint16 tokens). Each file becomes <bos>=%d, its bytes (ids\n"
            "0-255), <eos>=%d; files are concatenated in order. Use the shard with\n"
            "data.source = shards and model.vocab_size >= %d.\n"
            "\n"
            "options:\n"
            "  --out PATH   the shard to write (written to PATH.tmp, then renamed)\n"
            "  -h, --help   print this help and exit\n",
            MOLT_SHARD_MAGIC16, MOLT_TOK_BOS, MOLT_TOK_EOS, MOLT_TOK_MIN_VOCAB);
}

typedef struct {
    const char **files;
    int n_files;
    const char *out;
    int help;
} tokenize_args;

static int parse_args(int argc, char **argv, tokenize_args *a) {
    int rc = MOLT_OK;
    MOLT_ALLOC(a->files, argc);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            a->help = 1;
        } else if (!strcmp(arg, "--out")) {
            if (i + 1 >= argc) MOLT_FAIL(MOLT_ERR_INPUT, "tokenize: --out needs a PATH");
            a->out = argv[++i];
        } else if (!strncmp(arg, "--out=", 6)) {
            a->out = arg + 6;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            MOLT_FAIL(MOLT_ERR_INPUT, "tokenize: unknown option '%s' (see molt tokenize --help)",
                      arg);
        } else {
            a->files[a->n_files++] = arg;
        }
    }
    if (a->help) goto done;
    if (a->n_files == 0)
        MOLT_FAIL(MOLT_ERR_INPUT, "tokenize: no TEXT files given (see molt tokenize --help)");
    if (!a->out || !a->out[0])
        MOLT_FAIL(MOLT_ERR_INPUT,
                  "tokenize: --out SHARD.bin is required (see molt tokenize --help)");
done:
    return rc;
}

static int tokenize_files(const tokenize_args *a) {
    int rc = MOLT_OK;
    uint32_t *tokens = NULL;
    size_t n = 0;
    for (int i = 0; i < a->n_files; i++)
        MOLT_TRY(molt_tokenize_file(a->files[i], &tokens, &n));
    MOLT_TRY(molt_shard_write(a->out, tokens, n, 0));
    printf("molt tokenize: %d files, %zu tokens -> %s\n", a->n_files, n, a->out);
    fflush(stdout);
done:
    free(tokens);
    return rc;
}

static int run_rank0(int argc, char **argv) {
    int rc = MOLT_OK;
    tokenize_args a = {0};
    MOLT_TRY(parse_args(argc, argv, &a));
    if (a.help)
        usage(stdout);
    else
        MOLT_TRY(tokenize_files(&a));
done:
    free(a.files);
    return rc;
}

int molt_cmd_tokenize(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0, result = MOLT_OK;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank == 0) result = run_rank0(argc, argv);
    MOLT_MPI(MPI_Bcast(&result, 1, MPI_INT, 0, comm));
    rc = result;
done:
    return rc;
}
