/* driver.h — shared by the test and bench driver programs (tests/ref and
 * tests/bench): a configuration from a file plus "--set k=v" pairs, a
 * model built from it with weights loaded, and the MPI main. Header-only:
 * each driver is its own program. */
#ifndef MOLT_TEST_DRIVER_H
#define MOLT_TEST_DRIVER_H
#include <mpi.h>
#include <string.h>

#include "molt/config.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/model.h"

/* CONFIG, then each "--set k=v" pair among argv[0..argc), then validation. */
static inline int driver_config(molt_config *c, const char *path, int argc, char **argv) {
    int rc = MOLT_OK;
    molt_config_defaults(c);
    MOLT_TRY(molt_config_load(c, path));
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--set")) MOLT_TRY(molt_config_set(c, argv[++i]));
    MOLT_TRY(molt_config_validate(c));
done:
    return rc;
}

/* driver_config, then a one-rank model for B x T rows (T = 0: train.seq_len)
 * with every weight of `weights` loaded (adapters and routers too). */
static inline int driver_model(molt_config *c, molt_model *m, const char *path, const char *weights,
                               int B, int T, int argc, char **argv) {
    int rc = MOLT_OK;
    MOLT_TRY(driver_config(c, path, argc, argv));
    MOLT_TRY(molt_model_create(m, c, B, T ? T : c->train.seq_len, NULL));
    if (weights) MOLT_TRY(molt_weights_load(weights, m, 1));
done:
    return rc;
}

/* main(): MPI around run(argc, argv); its code is the exit status. */
#define DRIVER_MAIN(run)                                                                           \
    int main(int argc, char **argv) {                                                              \
        MPI_Init(&argc, &argv);                                                                    \
        int rc_ = run(argc, argv);                                                                 \
        MPI_Finalize();                                                                            \
        return rc_;                                                                                \
    }

#endif
