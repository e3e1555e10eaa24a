/* blas.c - OpenBLAS kernel choice at program start and its numeric self-check (see blas.h). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cblas.h>
#include "blas.h"
#include "cli.h"
#include "proto.h"

#define STATE_VAR "SAEFLOW_BLAS_STATE"
#define CORE_VAR "OPENBLAS_CORETYPE"
#define TIMEOUT_VAR "OPENBLAS_THREAD_TIMEOUT"
/* OpenBLAS's idle worker threads spin (sched_yield) for 2^28 cycles after every call, taking the
 * cores from our own threads between GEMMs (attention, norms, the log-sum-exp): 3-5% of
 * sf-forward on 2 cores. 2^4 cycles (its minimum) puts them to sleep at once; the wake-up costs
 * microseconds against GEMMs of milliseconds. */
#define TIMEOUT_OURS "4"

static char s_detected[96] = "";   /* OpenBLAS's own detection (or the faked one) */
static char s_refused[96] = "";    /* saeflow's choice that failed the self-check */
static const char *s_origin = "openblas";

const char *proto_blas_kernel(void)
{
    const char *c = openblas_get_corename();
    return c && *c ? c : "unknown";
}
const char *proto_blas_detected(void) { return s_detected[0] ? s_detected : proto_blas_kernel(); }
const char *proto_blas_origin(void) { return s_origin; }

int proto_blas_kernel_rank(const char *corename)
{
    static const struct { const char *name; int rank; } k[] = {
        {"Cooperlake", 4}, {"SapphireRapids", 4}, {"SkylakeX", 3}, {"Haswell", 2}, {"Zen", 2},
        {"Excavator", 2}, {"Sandybridge", 1}, {"Bulldozer", 1}, {"Piledriver", 1}, {"Steamroller", 1},
    };
    for (size_t i = 0; corename && i < sizeof k / sizeof k[0]; i++)
        if (strcasecmp(corename, k[i].name) == 0) return k[i].rank;
    return 0;
}

const char *proto_blas_cpu_best(void)
{
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (avx512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

/* ---- self-check ---- */
enum { CHECK_M = 64, CHECK_N = 96, CHECK_K = 80 };

/* multiples of 1/8 in [-0.75, 0.75]: every product and every partial sum is exact in f32, so a
 * correct kernel matches the double loop to rounding of nothing at all */
static float check_val(int i, int salt) { return (float)((i * 7 + salt * 3) % 13 - 6) / 8.0f; }

/* max |C - ref| / max |ref| of one sgemm C(M,N) = op(A) op(B) */
static double check_one(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, float *a, float *b, float *c, bool corrupt)
{
    const int m = CHECK_M, n = CHECK_N, k = CHECK_K;
    int lda = ta == CblasNoTrans ? k : m, ldb = tb == CblasNoTrans ? n : k;
    for (int i = 0; i < m * k; i++) a[i] = check_val(i, 1);
    for (int i = 0; i < k * n; i++) b[i] = check_val(i, 2);
    for (int i = 0; i < m * n; i++) c[i] = 12345.f;
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, n);
    if (corrupt) c[m * n / 2] += 1.f;
    double max_err = 0, max_ref = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (double)(ta == CblasNoTrans ? a[i * k + p] : a[p * m + i]) *
                     (double)(tb == CblasNoTrans ? b[p * n + j] : b[j * k + p]);
            double e = fabs((double)c[i * n + j] - s);
            if (isnan(e)) max_err = INFINITY;
            else if (e > max_err) max_err = e;
            if (fabs(s) > max_ref) max_ref = fabs(s);
        }
    return max_ref > 0 ? max_err / max_ref : max_err;
}

int proto_blas_selfcheck(double *rel_err)
{
    const char *fw = getenv("SAEFLOW_BLAS_FAKE_WRONG");
    bool corrupt = fw && strcmp(fw, "1") == 0 && strcmp(s_origin, "cpu") == 0;
    float *a = proto_aligned_alloc(sizeof(float) * CHECK_M * CHECK_K);
    float *b = proto_aligned_alloc(sizeof(float) * CHECK_K * CHECK_N);
    float *c = proto_aligned_alloc(sizeof(float) * CHECK_M * CHECK_N);
    if (!a || !b || !c) { free(a); free(b); free(c); proto_set_detail("BLAS self-check: out of memory"); return PROTO_E_NOMEM; }
    double e1 = check_one(CblasNoTrans, CblasNoTrans, a, b, c, corrupt);
    double e2 = check_one(CblasNoTrans, CblasTrans, a, b, c, false);
    double e3 = check_one(CblasTrans, CblasNoTrans, a, b, c, false);
    free(a); free(b); free(c);
    double e = fmax(e1, fmax(e2, e3));
    if (rel_err) *rel_err = e;
    if (e <= 1e-5) return PROTO_OK;
    proto_set_detail("sgemm %dx%dx%d is off by %.3g relative", CHECK_M, CHECK_N, CHECK_K, e);
    return PROTO_E_MISMATCH;
}

/* ---- re-exec (main side) ---- */

/* argv as the program was started, from /proc/self/cmdline (getopt has not run yet, and it
 * permutes only the pointer array anyway). NULL on failure; free(argv[0]) and free(argv). */
static char **cmdline_argv(void)
{
    char *buf = NULL;
    size_t len = 0;
    if (proto_read_file("/proc/self/cmdline", &buf, &len) != PROTO_OK || len == 0) { free(buf); return NULL; }
    if (buf[len - 1] != '\0') len++;   /* proto_read_file NUL-terminates at buf[len] */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += buf[i] == '\0';
    char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv) { free(buf); return NULL; }
    for (size_t i = 0, j = 0; j < n; j++) { argv[j] = buf + i; i += strlen(buf + i) + 1; }
    argv[n] = NULL;
    return argv;
}

static bool can_reexec(void)
{
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) return false;   /* valgrind: /proc/self/exe is valgrind */
    return access("/proc/self/exe", X_OK) == 0;
}

/* Returns only on failure (errno set). */
static void reexec(void)
{
    char **argv = cmdline_argv();
    if (!argv) { if (!errno) errno = EINVAL; return; }
    fflush(NULL);
    /* the binary's own path, so that the process keeps its name (ps, pgrep, top: not "exe") */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) { self[n] = '\0'; execv(self, argv); }
    execv("/proc/self/exe", argv);
    int e = errno;
    free(argv[0]); free(argv);
    errno = e;
}

static void check_or_warn(const char *whose)
{
    if (proto_blas_selfcheck(NULL) != PROTO_OK)
        proto_warn("BLAS self-check: %s kernel %s computes wrong results on this CPU (%s); results may be wrong",
                   whose, proto_blas_kernel(), proto_detail());
}

/* first start: re-exec once, with the CPU's best kernel when OpenBLAS fell short (and no user
 * choice) and with idle OpenBLAS threads that sleep at once when the user set no timeout */
static void choose(bool user_core)
{
    const char *fake = getenv("SAEFLOW_BLAS_FAKE_CORE"), *autov = getenv("SAEFLOW_BLAS_AUTO");
    snprintf(s_detected, sizeof s_detected, "%s", fake && *fake ? fake : proto_blas_kernel());
    const char *best = proto_blas_cpu_best();
    bool autom = !(autov && strcmp(autov, "0") == 0);
    bool want = autom && !user_core && best && proto_blas_kernel_rank(best) > proto_blas_kernel_rank(s_detected);
    bool timeout = autom && !getenv(TIMEOUT_VAR) && sysconf(_SC_NPROCESSORS_ONLN) > 1;
    if ((want || timeout) && can_reexec()) {
        char st[128];
        snprintf(st, sizeof st, "%s:%s", want ? "chose" : "timeout", s_detected);
        if (want) setenv(CORE_VAR, best, 1);
        if (timeout) setenv(TIMEOUT_VAR, TIMEOUT_OURS, 1);
        setenv(STATE_VAR, st, 1);
        reexec();
        int e = errno;
        if (want) unsetenv(CORE_VAR);
        if (timeout) unsetenv(TIMEOUT_VAR);
        unsetenv(STATE_VAR);
        if (want)
            proto_warn("BLAS: cannot re-execute with %s=%s (%s); computing with OpenBLAS's %s kernel",
                       CORE_VAR, best, strerror(e), proto_blas_kernel());
    }
    check_or_warn(user_core ? "the " CORE_VAR : "OpenBLAS's");
}

/* re-executed with saeflow's choice: keep it if it computes right, else back to OpenBLAS's */
static void settle_chosen(const char *detected)
{
    snprintf(s_detected, sizeof s_detected, "%s", detected);
    s_origin = "cpu";
    if (proto_blas_selfcheck(NULL) == PROTO_OK) { unsetenv(CORE_VAR); return; }
    char kernel[64], st[96];
    snprintf(kernel, sizeof kernel, "%s", proto_blas_kernel());
    proto_warn("BLAS self-check: kernel %s computes wrong results on this CPU (%s); falling back to OpenBLAS's default",
               kernel, proto_detail());
    snprintf(st, sizeof st, "refused:%s", kernel);
    setenv(STATE_VAR, st, 1);
    unsetenv(CORE_VAR);
    reexec();
    proto_die(PROTO_EXIT_FAIL, "BLAS: cannot re-execute without the refused kernel %s: %s", kernel, strerror(errno));
}

const char *proto_blas_describe(void)
{
    static char line[320];
    const char *k = proto_blas_kernel(), *to = getenv(TIMEOUT_VAR);
    int n;
    if (strcmp(s_origin, "cpu") == 0)
        n = snprintf(line, sizeof line, "BLAS kernel %s (chosen from the CPU features; OpenBLAS detected %s)", k, s_detected);
    else if (strcmp(s_origin, "fallback") == 0)
        n = snprintf(line, sizeof line, "BLAS kernel %s (OpenBLAS's own; %s failed the self-check)", k, s_refused);
    else if (strcmp(s_origin, "user") == 0)
        n = snprintf(line, sizeof line, "BLAS kernel %s (%s=%s)", k, CORE_VAR, getenv(CORE_VAR) ? getenv(CORE_VAR) : "");
    else
        n = snprintf(line, sizeof line, "BLAS kernel %s (OpenBLAS's own choice)", k);
    if (to && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - n, ", idle threads spin 2^%.8s cycles (%s)", to, TIMEOUT_VAR);
    return line;
}

static bool s_settled;
bool proto_blas_settled(void) { return s_settled; }

void proto_blas_init(void)
{
    s_settled = true;
    char state[80] = "";
    const char *st = getenv(STATE_VAR), *user = getenv(CORE_VAR);
    if (st) { snprintf(state, sizeof state, "%s", st); unsetenv(STATE_VAR); }
    if (strncmp(state, "chose:", 6) == 0) {
        settle_chosen(state + 6);
    } else if (strncmp(state, "refused:", 8) == 0) {
        s_origin = "fallback";
        snprintf(s_refused, sizeof s_refused, "%s", state + 8);
        check_or_warn("OpenBLAS's");
    } else if (strncmp(state, "timeout:", 8) == 0) {   /* re-executed for the timeout alone */
        snprintf(s_detected, sizeof s_detected, "%s", state + 8);
        if (user && *user) s_origin = "user";
        check_or_warn(user && *user ? "the " CORE_VAR : "OpenBLAS's");
    } else {
        if (user && *user) s_origin = "user";
        choose(user && *user);
    }
}
