/* factor_speed — inference throughput of a dense model against its
 * factorization (molt factorize) in one process, for launch/bench --factor:
 *   factor_speed DENSE_CONFIG DENSE.h5 MOE_CONFIG MOE.h5 ROUNDS [--set k=v ...]
 * (--set applies to MOE_CONFIG, e.g. moe.top_k). Both models run the same
 * task-suite batch (train.batch_size x train.seq_len of DENSE_CONFIG) in
 * inference mode, alternating, ROUNDS times each after one warm-up; the
 * fastest forward of each counts (shared machines only slow things down).
 * Prints one line: dense_tok_s moe_tok_s ratio, then the MoE forward's
 * shares of time in routing (router, top-k, dispatch plan), expert GEMMs and
 * gather/combine (molt_moe_times). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ref/driver.h"
#include "molt/config.h"
#include "molt/data.h"
#include "molt/err.h"
#include "molt/h5io.h"
#include "molt/model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run(int argc, char **argv) {
    int rc = MOLT_OK;
    molt_config cd, cm;
    molt_model dense = {0}, moe = {0};
    molt_batch b = {0};
    molt_data *data = NULL;
    if (argc < 6)
        MOLT_FAIL(MOLT_ERR_INPUT, "usage: factor_speed DENSE_CONFIG DENSE.h5 MOE_CONFIG MOE.h5 "
                                  "ROUNDS [--set k=v ...]");
    int rounds = atoi(argv[5]);
    molt_config tmp;
    molt_config_defaults(&tmp);
    MOLT_TRY(molt_config_load(&tmp, argv[1]));
    const int B = tmp.train.batch_size, T = tmp.train.seq_len;
    MOLT_TRY(driver_model(&cd, &dense, argv[1], argv[2], B, T, 0, NULL));
    MOLT_TRY(driver_model(&cm, &moe, argv[3], argv[4], B, T, argc - 6, argv + 6));
    MOLT_TRY(molt_batch_alloc(&b, B, T));
    MOLT_TRY(molt_data_open(&data, &cd, MOLT_SPLIT_EVAL));
    MOLT_TRY(molt_data_fill(data, 0, &b));
    double best[2] = {1e30, 1e30}, moe_total = 0;
    molt_moe_times acc = {0, 0, 0, 0};
    molt_model *ms[2] = {&dense, &moe};
    for (int r = 0; r <= rounds; r++)
        for (int i = 0; i < 2; i++) {
            long count = 0;
            molt_model *mm = ms[(i + r) % 2];
            memset(&mm->times, 0, sizeof mm->times);
            double t0 = now_s();
            molt_model_forward(mm, &b, 0, 0, 0, &count);
            double dt = now_s() - t0;
            if (mm == &moe && r > 0) { /* where the MoE forward's time goes */
                acc.route += mm->times.route, acc.expert += mm->times.expert;
                acc.combine += mm->times.combine, moe_total += dt;
            }
            if (r > 0 && dt < best[(i + r) % 2]) best[(i + r) % 2] = dt; /* round 0: warm-up */
        }
    double tok = (double)B * T;
    printf("%.1f %.1f %.4f %.3f %.3f %.3f\n", tok / best[0], tok / best[1], best[0] / best[1],
           acc.route / moe_total, acc.expert / moe_total, acc.combine / moe_total);
done:
    molt_data_close(data);
    molt_batch_free(&b);
    molt_model_free(&dense);
    molt_model_free(&moe);
    return rc;
}

DRIVER_MAIN(run)
