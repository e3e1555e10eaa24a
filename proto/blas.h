/* blas.h - which OpenBLAS kernel the stages compute with.
 *
 * Debian's OpenBLAS (DYNAMIC_ARCH) picks its kernels from the CPU model when it loads; on CPUs
 * it does not know it falls back to a generic one (Prescott: SSE3, 4x slower than the machine
 * allows), and it reads OPENBLAS_CORETYPE only when it loads. proto_blas_init, called by
 * proto_cli_init_blas (the stages that compute with BLAS) before any BLAS call, therefore re-executes the program once with
 * OPENBLAS_CORETYPE set to the best kernel the CPU's features allow, then checks that kernel
 * with a small sgemm against a naive loop and, if it computes wrong results, re-executes once
 * more with OpenBLAS's own choice (and warns). A user's OPENBLAS_CORETYPE always wins.
 * The first re-exec also sets OPENBLAS_THREAD_TIMEOUT=4 (unless the user set it): OpenBLAS's idle
 * threads then sleep at once instead of spinning against the stage's own threads (3-5% of a
 * forward on 2 cores); on one core, or with both variables already set, there is no re-exec.
 *
 * Environment:
 *   OPENBLAS_CORETYPE          the user's choice: kept (a failing self-check only warns)
 *   OPENBLAS_THREAD_TIMEOUT    the user's idle-spin length (OpenBLAS: 2^N cycles): kept
 *   SAEFLOW_BLAS_STATE         internal marker ("chose:DETECTED" / "timeout:DETECTED" /
 *                              "refused:KERNEL") so the re-exec happens at most twice;
 *                              removed once the kernel is settled
 *   SAEFLOW_BLAS_AUTO=0        leave OpenBLAS as it loaded: its own kernel, its own idle spin
 *                              (no re-exec; the self-check still runs)
 *   SAEFLOW_BLAS_FAKE_CORE=X   test hook: pretend OpenBLAS detected kernel X
 *   SAEFLOW_BLAS_FAKE_WRONG=1  test hook: the self-check of a kernel saeflow chose sees a wrong
 *                              result (OpenBLAS's own choice is not affected)
 * Under valgrind (LD_PRELOAD holds vgpreload) there is no re-exec: /proc/self/exe would be
 * valgrind itself, and valgrind's CPU model is what OpenBLAS detected anyway.
 */
#ifndef SAEFLOW_BLAS_H
#define SAEFLOW_BLAS_H

#include <stdbool.h>

/* The OpenBLAS kernel in use (openblas_get_corename()), e.g. "Cooperlake". */
const char *proto_blas_kernel(void);
/* What OpenBLAS detected on its own (before saeflow's choice; SAEFLOW_BLAS_FAKE_CORE if set). */
const char *proto_blas_detected(void);
/* How the kernel in use was chosen: "openblas" (its own detection), "cpu" (saeflow's choice
 * from the CPU features), "user" (OPENBLAS_CORETYPE), "fallback" (saeflow's choice was refused
 * by the self-check). */
const char *proto_blas_origin(void);
/* One line for -v: "BLAS kernel Cooperlake (chosen from the CPU features; OpenBLAS detected
 * Prescott)" and the like; proto_cli_finish prints it with -v. Static buffer. */
const char *proto_blas_describe(void);
/* The best kernel this CPU runs ("Cooperlake", "SkylakeX", "Haswell"), or NULL when it has no
 * AVX2+FMA (then OpenBLAS's own choice is kept). */
const char *proto_blas_cpu_best(void);
/* Kernel class for comparison: 4 AVX-512 BF16, 3 AVX-512, 2 AVX2, 1 AVX, 0 older/unknown. */
int proto_blas_kernel_rank(const char *corename);
/* Numeric self-check of the loaded kernel: 64x96x80 sgemm (NN, NT and TN, as the stages call it)
 * against a double-precision loop. PROTO_OK, or PROTO_E_MISMATCH with a detail naming the
 * relative error. *rel_err (may be NULL) gets the largest relative error. */
int proto_blas_selfcheck(double *rel_err);

/* Main-side helper (like cli.c's: it may warn on stderr and exec): settles the kernel as the
 * top comment says. Call before reading any input or calling BLAS; at most two re-execs. */
void proto_blas_init(void);
/* proto_blas_init has run in this process (a BLAS stage): the header's stages[] entry gets "blas". */
bool proto_blas_settled(void);

#endif
