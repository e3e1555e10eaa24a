/* sgemm-peak - the machine's measured OpenBLAS sgemm peak, the yardstick every compute figure
 * of saeflow is reported against. Prints peak_gflops_all=X peak_gflops_one=Y: the best of a
 * few square products of size N and 2N (default N 2048: with two threads a 2048 product
 * understates the peak), all threads, then one thread of size N. */
#include "sgemm-yardstick.h"

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2048;
    if (n < 64 || n > 16384) { fprintf(stderr, "sgemm-peak: size %d out of range [64, 16384]\n", n); return 2; }
    int threads = openblas_get_num_threads();
    double all = sgemm_best_gflops(n, 3), all2 = sgemm_best_gflops(2 * n, 2);
    if (all2 > all) all = all2;
    openblas_set_num_threads(1);
    double one = sgemm_best_gflops(n, 3);
    openblas_set_num_threads(threads);
    printf("peak_gflops_all=%.2f peak_gflops_one=%.2f threads=%d n=%d\n", all, one, threads, n);
    return 0;
}
