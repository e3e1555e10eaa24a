/* sgemm-peak - the machine's measured OpenBLAS sgemm peak, the yardstick every compute figure
 * of saeflow is reported against. Prints peak_gflops_all=X peak_gflops_one=Y: the best of a
 * few square products of size N and 2N (default N 2048: with two threads a 2048 product
 * understates the peak), all threads, then one thread of size N. */
#include <stdio.h>
#include <stdlib.h>
#include <cblas.h>
#include "cli.h"
#include "proto.h"

static double best_gflops(int n, int reps)
{
    float *a = proto_aligned_alloc((size_t)n * n * 4), *b = proto_aligned_alloc((size_t)n * n * 4), *c = proto_aligned_alloc((size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.2f; }
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

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2048;
    if (n < 64 || n > 16384) { fprintf(stderr, "sgemm-peak: size %d out of range [64, 16384]\n", n); return 2; }
    int threads = openblas_get_num_threads();
    double all = best_gflops(n, 3), all2 = best_gflops(2 * n, 2);
    if (all2 > all) all = all2;
    openblas_set_num_threads(1);
    double one = best_gflops(n, 3);
    openblas_set_num_threads(threads);
    printf("peak_gflops_all=%.2f peak_gflops_one=%.2f threads=%d n=%d\n", all, one, threads, n);
    return 0;
}
