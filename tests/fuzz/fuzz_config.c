/* fuzz_config.c — libFuzzer target for the INI config loader
 * (molt_config_load_string, include/molt/config.h). One input is the text of
 * a config file. Whatever it holds, loading must return a code, never crash.
 * A config that loads and validates must survive the resolved-config round
 * trip that checkpoints and config.ini rely on: molt_config_to_ini, loaded
 * again on defaults, validates and prints the same text (else abort), and
 * molt_dims_from_config returns a code. Errors print to stderr (run.sh passes
 * -close_fd_mask=2). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "molt/config.h"
#include "molt/err.h"
#include "molt/model.h"

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    check(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    molt_config c, back;
    molt_config_defaults(&c);
    if (molt_config_load_string(&c, text, "fuzz.ini") == MOLT_OK &&
        molt_config_validate(&c) == MOLT_OK) {
        char *ini = molt_config_to_ini(&c), *again = NULL;
        check(ini != NULL);
        molt_config_defaults(&back);
        check(molt_config_load_string(&back, ini, "resolved") == MOLT_OK);
        check(molt_config_validate(&back) == MOLT_OK);
        again = molt_config_to_ini(&back);
        check(again != NULL && strcmp(ini, again) == 0);
        molt_dims dims;
        (void)molt_dims_from_config(&dims, &c);
        free(ini);
        free(again);
    }
    free(text);
    return 0;
}
