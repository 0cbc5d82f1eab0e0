/* testutil.h — shared scaffolding for the CUnit programs in tests/unit. */
#ifndef MOLT_TESTUTIL_H
#define MOLT_TESTUTIL_H
#include <CUnit/Basic.h>
#include <mpi.h>
#include <math.h>
#include <stdio.h>
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

/* For suites that write files: `run` sees `dir` (n bytes) set to a fresh
 * directory made by mkdtemp (the six X are its template, not a placeholder),
 * which is removed afterwards. Callers define _POSIX_C_SOURCE for mkdtemp. */
#if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200809L
static inline int molt_run_in_scratch(int argc, char **argv, const char *name, char *dir, size_t n,
                                      int (*run)(int, char **)) {
    snprintf(dir, n, "/tmp/molt_test_%s.XXXXXX", name);
    if (!mkdtemp(dir)) return 1;
    int rc = run(argc, argv);
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
#endif
#endif
