/* main.c — the `molt` command: dispatches to subcommands in src/cli. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        printf("usage: molt COMMAND [ARGS]\n");
        return 0;
    }
    return 2;
}
