/*
 * require.h -- REQUIRE(), the invariant check of the C fuzz targets: on a
 * violation it names the condition and aborts, which libFuzzer reports as a
 * crash with the input that caused it.
 */
#ifndef CARPINUS_FUZZ_REQUIRE_H
#define CARPINUS_FUZZ_REQUIRE_H

#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(cond)                                                          \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__,       \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif /* CARPINUS_FUZZ_REQUIRE_H */
