/* testutil.h — shared scaffolding for the CUnit programs in tests/unit. */
#ifndef MOLT_TESTUTIL_H
#define MOLT_TESTUTIL_H
#include <CUnit/Basic.h>
#include <mpi.h>
#include <math.h>
#include <stdlib.h>

typedef struct {
    const char *name;
    CU_TestFunc fn;
} molt_test_case;

/* Register one suite of cases and run it; returns the process exit code.
 * MPI is initialised because library code labels errors with the rank. */
static inline int molt_run_suite(int argc, char **argv, const char *suite,
                                 const molt_test_case *cases) {
    MPI_Init(&argc, &argv);
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    for (const molt_test_case *c = cases; c->name; c++) CU_add_test(s, c->name, c->fn);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    MPI_Finalize();
    return failed ? 1 : 0;
}
#endif
