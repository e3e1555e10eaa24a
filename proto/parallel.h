/* parallel.h - one way to spread a kernel over threads, for every stage (ggml's ith/nth idea).
 *
 * proto_parallel_run(nth, fn, arg) calls fn(arg, ith, nth) for ith = 0 .. nth-1, ith 0 on the
 * calling thread, and returns when all are done. Each worker finds its own share of the work
 * from (ith, nth) — with proto_par_range for contiguous ranges — and writes only its own
 * outputs, so the result does not depend on nth where the kernel is per-item. A thread that
 * cannot be started runs its share on the caller: the work is always done.
 * proto_parallel_for(n_threads, n, grain, fn, arg) is the common case: fn(arg, lo, hi) over
 * [0, n) in contiguous ranges of at least `grain` items.
 * Every kernel takes its own small argument struct through `arg`.
 *
 * HOW OUR THREADS AND OPENBLAS'S SHARE THE CORES. A stage's --threads N is the one budget: it
 * sets OpenBLAS's thread count (proto_cli_finish) and the nth of every parallel region here.
 * The two never run at once: a stage calls sgemm from one thread (OpenBLAS fans it out over N)
 * or runs a region here (N of our threads, each doing only scalar work, or sgemm while OpenBLAS
 * is at one thread); never sgemm from inside a region while OpenBLAS is at N. So at most N
 * threads compute at any moment. Threads are started per region (tens of microseconds each),
 * which is why regions have a grain: small loops run inline.
 */
#ifndef SAEFLOW_PARALLEL_H
#define SAEFLOW_PARALLEL_H

#include <stddef.h>

#define PROTO_MAX_THREADS 256

/* Hot element-wise loops are compiled for the x86-64 baseline and for AVX2 and AVX-512; the CPU
 * picks one when the program loads (GCC target_clones, an ifunc), so one portable binary runs at
 * the machine's width (valgrind reports no AVX-512 and gets the AVX2 one). The results are the
 * same bits whichever runs: -std=c11 leaves FMA contraction off and no float sum is reordered
 * (tests/pipeline/simd-clones.sh). SAEFLOW_NO_CLONES, clang or another CPU: the plain function. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SAEFLOW_NO_CLONES)
#define PROTO_SIMD_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define PROTO_SIMD_CLONES
#endif

/* The contiguous share [lo, hi) of n items for worker ith of nth (the same split everywhere). */
static inline void proto_par_range(size_t n, int ith, int nth, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)ith / (size_t)nth;
    *hi = n * (size_t)(ith + 1) / (size_t)nth;
}

/* fn(arg, ith, nth) on nth threads (clamped to [1, PROTO_MAX_THREADS]), ith 0 on the caller. */
void proto_parallel_run(int nth, void (*fn)(void *arg, int ith, int nth), void *arg);

/* fn(arg, lo, hi) over [0, n): at most n_threads ranges, each of at least `grain` items (grain 0
 * counts as 1); one range runs inline. */
void proto_parallel_for(int n_threads, size_t n, size_t grain, void (*fn)(void *arg, size_t lo, size_t hi),
                        void *arg);

#endif
