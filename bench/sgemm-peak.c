/* sgemm-peak - the machine's measured OpenBLAS sgemm peak, the yardstick every compute figure
 * of saeflow is reported against. Prints peak_gflops_all=X peak_gflops_one=Y ... kernel=K
 * origin=O: the best of a few square products of size N and 2N (default N 2048: with two
 * threads a 2048 product understates the peak), all threads, then one thread of size N.
 * The kernel is chosen as every stage chooses it (proto_blas_init: OPENBLAS_CORETYPE when set,
 * else the CPU's best when OpenBLAS fell short), so the figure is the one the stages get.
 *
 *   sgemm-peak [N]        the peak with the stages' kernel
 *   sgemm-peak --kernels  the OpenBLAS kernels this CPU can run, one a line (for bench/run's
 *                         best-kernel yardstick: OPENBLAS_CORETYPE=K sgemm-peak for each) */
#include <string.h>
#include "blas.h"
#include "sgemm-yardstick.h"

static void list_kernels(void)
{
    static const char *k[] = {"Prescott", "Nehalem", "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake"};
    const char *best = proto_blas_cpu_best();
    int top = best ? proto_blas_kernel_rank(best) : 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (proto_blas_kernel_rank(k[i]) <= top && (top > 0 || i == 0)) printf("%s\n", k[i]);
}

int main(int argc, char **argv)
{
    g_prog = "sgemm-peak";
    if (argc > 1 && strcmp(argv[1], "--kernels") == 0) { list_kernels(); return 0; }
    proto_blas_init();
    int n = argc > 1 ? atoi(argv[1]) : 2048;
    if (n < 64 || n > 16384) { fprintf(stderr, "sgemm-peak: size %d out of range [64, 16384]\n", n); return 2; }
    int threads = openblas_get_num_threads();
    double all = sgemm_best_gflops(n, 3), all2 = sgemm_best_gflops(2 * n, 2);
    if (all2 > all) all = all2;
    openblas_set_num_threads(1);
    double one = sgemm_best_gflops(n, 3);
    openblas_set_num_threads(threads);
    printf("peak_gflops_all=%.2f peak_gflops_one=%.2f threads=%d n=%d kernel=%s origin=%s detected=%s\n",
           all, one, threads, n, proto_blas_kernel(), proto_blas_origin(), proto_blas_detected());
    return 0;
}
