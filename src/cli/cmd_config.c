/* cmd_config.c — `molt config CONFIG [--set k=v ...] [--get section.key ...]`.
 * Resolves a configuration exactly as `molt train` does (file, overrides in
 * order, validation) and prints the resolved INI, or the values of the keys
 * asked for, one per line. Sweeps use it to check every point before anything
 * is submitted and to write each point's resolved config. Rank 0 prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "molt/config.h"
#include "molt/err.h"

static void config_help(void) {
    printf("usage: molt config CONFIG [--set section.key=value ...] [--get section.key ...]\n\n"
           "Prints the resolved configuration (CONFIG, then each --set in order, then the\n"
           "checks molt train makes) as INI, or with --get only the value of each key\n"
           "named, one per line. Exit 2 names the file, key or value at fault.\n\n"
           "  --set section.key=value   override one key (repeatable)\n"
           "  --get section.key         print this key's resolved value (repeatable)\n"
           "  --help                    this text\n");
}

/* The value of section.key in INI text written by molt_config_to_ini
 * ("[section]" headers, "key = value" lines), copied into out. */
static int ini_value(const char *text, const char *name, char *out, size_t n) {
    const char *dot = strchr(name, '.');
    if (!dot || dot == name || !dot[1])
        return MOLT_ERROR(MOLT_ERR_INPUT, "molt config: --get '%s': expected section.key", name);
    size_t slen = (size_t)(dot - name), klen = strlen(dot + 1);
    int in_section = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 1 && p[0] == '[')
            in_section = len == slen + 2 && !strncmp(p + 1, name, slen) && p[slen + 1] == ']';
        else if (in_section && len > klen + 3 && !strncmp(p, dot + 1, klen) &&
                 !strncmp(p + klen, " = ", 3)) {
            size_t vlen = len - klen - 3;
            if (vlen >= n)
                return MOLT_ERROR(MOLT_ERR_INTERNAL, "molt config: value of %s too long", name);
            memcpy(out, p + klen + 3, vlen);
            out[vlen] = '\0';
            return MOLT_OK;
        }
        p += len + (eol != NULL);
    }
    return MOLT_ERROR(MOLT_ERR_INPUT, "molt config: no key '%s' (molt train --help lists them)",
                      name);
}

int molt_cmd_config(int argc, char **argv, MPI_Comm comm) {
    int rc = MOLT_OK, rank = 0;
    char *text = NULL;
    molt_config c;
    MOLT_MPI(MPI_Comm_rank(comm, &rank));
    if (rank != 0) return MOLT_OK; /* a single-process command */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_help();
            return MOLT_OK;
        }
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: molt config CONFIG [--set k=v ...] [--get section.key ...] "
                        "(molt config --help)\n");
        return MOLT_ERR_INPUT;
    }
    molt_config_defaults(&c);
    MOLT_TRY(molt_config_load(&c, argv[1]));
    int gets = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc)
            MOLT_TRY(molt_config_set(&c, argv[++i]));
        else if (!strncmp(argv[i], "--set=", 6))
            MOLT_TRY(molt_config_set(&c, argv[i] + 6));
        else if (!strcmp(argv[i], "--get") && i + 1 < argc)
            i++, gets++;
        else
            MOLT_FAIL(MOLT_ERR_INPUT, "molt config: unexpected argument '%s' (molt config --help)",
                      argv[i]);
    }
    MOLT_TRY(molt_config_validate(&c));
    if (!(text = molt_config_to_ini(&c)))
        MOLT_FAIL(MOLT_ERR_INTERNAL, "molt config: out of memory");
    if (!gets) fputs(text, stdout);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--get") != 0) continue;
        char value[4096];
        MOLT_TRY(ini_value(text, argv[++i], value, sizeof value));
        printf("%s\n", value);
    }
    if (fflush(stdout) != 0) MOLT_FAIL(MOLT_ERR_INTERNAL, "molt config: cannot write stdout");
done:
    free(text);
    return rc;
}
