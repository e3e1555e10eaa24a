/* check.h - tiny assertion helper for C unit tests: CHECK prints file:line and counts. */
#ifndef SAEFLOW_CHECK_H
#define SAEFLOW_CHECK_H
#include <stdio.h>
static int g_failed;
#define CHECK(cond, ...) do { if (!(cond)) { g_failed++; fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#endif
