/*
 * check.h -- the mini harness of the C tests (test_parser.c, test_writer.c,
 * test_wsframe.c).  No framework: CHECK() counts, prints each failure with
 * the name of the case under way (`current`) and carries on; main() exits
 * non-zero if anything failed.  Include it once, in the test's one file.
 */
#ifndef CARPINUS_TEST_CHECK_H
#define CARPINUS_TEST_CHECK_H

#include <stdio.h>

static int n_checks, n_failures;
static const char *current = "";

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        n_checks++;                                                            \
        if (!(cond)) {                                                         \
            n_failures++;                                                      \
            fprintf(stderr, "%s:%d: [%s] CHECK(%s) failed: ", __FILE__,      \
                    __LINE__, current, #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

#endif /* CARPINUS_TEST_CHECK_H */
