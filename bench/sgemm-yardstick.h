/* sgemm-yardstick.h - the sgemm peak every compute figure of saeflow is reported against: the
 * best GFLOP/s of `reps` square n x n products through OpenBLAS at its current thread count.
 * Shared by bench/sgemm-peak.c and the benches that measure the peak next to their own run. */
#ifndef SAEFLOW_SGEMM_YARDSTICK_H
#define SAEFLOW_SGEMM_YARDSTICK_H
#include <stdio.h>
#include <stdlib.h>
#include <cblas.h>
#include "cli.h"
#include "proto.h"

static double sgemm_best_gflops(int n, int reps)
{
    size_t nn = (size_t)n * n;
    float *a = proto_aligned_alloc(nn * 4), *b = proto_aligned_alloc(nn * 4), *c = proto_aligned_alloc(nn * 4);
    if (!a || !b || !c) { fprintf(stderr, "sgemm yardstick: out of memory\n"); exit(1); }
    for (size_t i = 0; i < nn; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.2f; }
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t = proto_now();
        /* C(n,n) = A(n,n) · B(n,n) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        double g = 2.0 * n * n * n / (proto_now() - t) / 1e9;
        if (g > best) best = g;
    }
    free(a); free(b); free(c);
    return best;
}
#endif
