/* cli.c - common flags, messages, exit codes and progress for every stage's main. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "blas.h"
#include "cli.h"

const char *g_prog = "saeflow";
int g_verbose = 1;

void openblas_set_num_threads(int n) __attribute__((weak));

void proto_cli_init(struct proto_cli *cli, const char *argv0)
{
    const char *b = argv0 ? strrchr(argv0, '/') : NULL;
    g_prog = b ? b + 1 : (argv0 ? argv0 : "saeflow");
    memset(cli, 0, sizeof *cli);
    cli->in = "-"; cli->out = "-"; cli->progress = -1;
    proto_set_stage(g_prog);   /* the stage abort frames name */
}

void proto_cli_init_blas(struct proto_cli *cli, const char *argv0)
{
    proto_cli_init(cli, argv0);
    proto_blas_init();   /* OpenBLAS kernel choice: may re-exec once, so before any input (blas.h) */
}

/* -o: the first names the output; each more adds one to a fan-out named "A + B + ..." */
static void cli_add_out(struct proto_cli *cli, const char *arg)
{
    static char name[8192];
    if (cli->n_out == PROTO_CLI_MAX_OUT) proto_usage_error("-o: at most %d outputs", PROTO_CLI_MAX_OUT);
    cli->outs[cli->n_out++] = arg;
    cli->out = arg;
    if (cli->n_out == 1) return;
    size_t len = 0;
    for (int i = 0; i < cli->n_out; i++) {
        int k = snprintf(name + len, sizeof name - len, "%s%s", i ? " + " : "", cli->outs[i]);
        if (k < 0 || (size_t)k >= sizeof name - len) proto_usage_error("-o: the outputs' names are too long");
        len += (size_t)k;
    }
    cli->out = name;
    proto_writer_fanout(name, cli->outs, cli->n_out);
}

int proto_cli_common(struct proto_cli *cli, int c, const char *arg, void (*usage)(FILE *))
{
    switch (c) {
    case 'i': cli->in = arg; return 1;
    case 'o': cli_add_out(cli, arg); return 1;
    case 'q': g_verbose = 0; return 1;
    case 'v': g_verbose = 2; return 1;
    case 'f': cli->force = true; return 1;
    case 'h': usage(stdout); exit(PROTO_EXIT_OK);
    case 'V': printf("%s %s (saeflow, frame protocol v%d)\n", g_prog, SAEFLOW_VERSION, PROTO_VERSION); exit(PROTO_EXIT_OK);
    case PROTO_OPT_PROGRESS: cli->progress = 1; return 1;
    case PROTO_OPT_NO_PROGRESS: cli->progress = 0; return 1;
    case PROTO_OPT_THREADS: cli->threads = (int)proto_parse_ll("--threads", arg, 1, 1024); return 1;
    case PROTO_OPT_ZSTD: cli->zstd = true; return 1;
    case PROTO_OPT_INSECURE: cli->insecure = true; proto_zmq_set_insecure(true); return 1;
    case PROTO_OPT_KEYS: proto_zmq_set_keys(arg); return 1;
    case PROTO_OPT_CHECKSUM: case PROTO_OPT_NO_CHECKSUM:
        proto_checksum_set(c == PROTO_OPT_CHECKSUM); return 1;
    case '?': case ':':
        fprintf(stderr, "try '%s --help'\n", g_prog);
        exit(PROTO_EXIT_USAGE);
    default: return 0;
    }
}

void proto_cli_help_common(FILE *fp)
{
    fprintf(fp,
        "Common options:\n"
        "  -i, --in ENDPOINT     input (default -: stdin)\n"
        "  -o, --out ENDPOINT    output (default -: stdout); give it several times to send every frame\n"
        "                        to each (fan-out; exit 0 only when each got the whole stream)\n"
        "      ENDPOINT: - | FILE | FILE.zst | tcp://HOST:PORT (connect) | tcp://@ADDR:PORT (bind ADDR)\n"
        "                | tcp://*:PORT (bind all) | ipc://PATH\n"
        "  -q, --quiet           errors only;  -v, --verbose  more messages\n"
        "  -f, --force           write frames to a terminal anyway\n"
        "      --progress        progress line on stderr (default: when stderr is a terminal)\n"
        "      --no-progress     no progress line\n"
        "      --threads N       compute threads (OpenBLAS)\n"
        "      --zstd            compress tensor payloads with zstd (readers accept both)\n"
        "      --keys DIR        CURVE keys for tcp:// (sf-cat --keygen DIR; else SAEFLOW_ZMQ_KEYS)\n"
        "      --insecure        allow a tcp bind to a non-loopback address without keys\n"
        "      --checksum        a CRC32C per frame of its tensor data (readers check it when present;\n"
        "                        default on for files, .zst files and tcp://, off for pipes and ipc://)\n"
        "      --no-checksum     no per-frame checksum (readers still check one that is there)\n"
        "  -h, --help            this help;  -V, --version  version\n"
        "Exit codes: 0 ok; 1 runtime failure (I/O, bad frame, mismatch); 2 usage error;\n"
        "  3 input truncated (upstream ended without an end frame).\n");
}

static bool cli_writes_stdout(const struct proto_cli *cli)
{
    if (cli->n_out < 2) return strcmp(cli->out, "-") == 0;
    for (int i = 0; i < cli->n_out; i++) if (strcmp(cli->outs[i], "-") == 0) return true;
    return false;
}
/* Several -o: only for frame outputs, and no two of them the same file (or stdout twice). */
static void cli_check_outs(const struct proto_cli *cli, bool writes_frames)
{
    if (cli->n_out < 2) return;
    if (!writes_frames) proto_usage_error("-o given %d times: only a stream of frames fans out to several outputs", cli->n_out);
    for (int i = 0; i < cli->n_out; i++)
        for (int j = 0; j < i; j++)
            if (proto_same_file(cli->outs[i], cli->outs[j]) || (!strcmp(cli->outs[i], "-") && !strcmp(cli->outs[j], "-")))
                proto_usage_error("-o %s is given twice", cli->outs[i]);
}

void proto_cli_finish(struct proto_cli *cli, bool writes_frames)
{
    if (cli->threads > 0 && openblas_set_num_threads) openblas_set_num_threads(cli->threads);
    if (proto_blas_settled()) proto_info("%s", proto_blas_describe());   /* -v: the kernel it computes with */
    cli_check_outs(cli, writes_frames);
    if (writes_frames && !cli->force && cli_writes_stdout(cli) && isatty(1)) {
        proto_error("stdout is a terminal, refusing to write binary frames (use -o FILE, a pipe, or -f)");
        exit(PROTO_EXIT_USAGE);
    }
    proto_cli_check_distinct(cli->out, cli->in);
    if (cli->insecure && !proto_zmq_keys())
        proto_warn("--insecure: tcp:// streams are neither authenticated nor encrypted; anyone who reaches the port can read or inject frames");
}

void proto_cli_check_distinct(const char *out, const char *in)
{
    const char *const *outs;
    int n = proto_writer_fanout_list(out, &outs);
    if (n == 0) { outs = &out; n = 1; }   /* one output */
    for (int i = 0; i < n; i++) {
        if (proto_same_file(outs[i], in))
            proto_usage_error("%s: the output is the same file as the input %s (it would be overwritten while read)", outs[i], in);
        if (proto_zmq_check_exposure(outs[i]) != PROTO_OK) proto_die(PROTO_EXIT_USAGE, "%s", proto_detail());
    }
    if (proto_zmq_check_exposure(in) != PROTO_OK) proto_die(PROTO_EXIT_USAGE, "%s", proto_detail());
}

bool proto_cli_progress_on(const struct proto_cli *cli)
{
    if (cli->progress >= 0) return cli->progress;
    return g_verbose > 0 && isatty(2);
}

long long proto_parse_ll(const char *flag, const char *s, long long lo, long long hi)
{
    char *end; errno = 0;
    long long v = strtoll(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno) proto_usage_error("%s: '%s' is not an integer", flag, s ? s : "");
    if (v < lo || v > hi) proto_usage_error("%s: %lld is out of range [%lld, %lld]", flag, v, lo, hi);
    return v;
}
double proto_parse_double(const char *flag, const char *s, double lo, double hi)
{
    char *end; errno = 0;
    double v = strtod(s ? s : "", &end);
    if (!s || !*s || *end || errno || !isfinite(v)) proto_usage_error("%s: '%s' is not a number", flag, s ? s : "");
    if (v < lo || v > hi) proto_usage_error("%s: %g is out of range [%g, %g]", flag, v, lo, hi);
    return v;
}

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "%s: %s%s\n", g_prog, kind, line);
}
void proto_warn(const char *fmt, ...) { if (g_verbose < 1) return; va_list ap; va_start(ap, fmt); vmsg("warning: ", fmt, ap); va_end(ap); }
void proto_info(const char *fmt, ...) { if (g_verbose < 2) return; va_list ap; va_start(ap, fmt); vmsg("", fmt, ap); va_end(ap); }
void proto_error(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vmsg("error: ", fmt, ap); va_end(ap); }
void proto_die(int code, const char *fmt, ...) { va_list ap; va_start(ap, fmt); vmsg("error: ", fmt, ap); va_end(ap); exit(code); }
void proto_usage_error(const char *fmt, ...)
{
    va_list ap; va_start(ap, fmt); vmsg("error: ", fmt, ap); va_end(ap);
    fprintf(stderr, "try '%s --help'\n", g_prog);
    exit(PROTO_EXIT_USAGE);
}

int proto_exit_code(int err) { return err == PROTO_E_TRUNCATED ? PROTO_EXIT_TRUNCATED : err == PROTO_OK || err == PROTO_END ? PROTO_EXIT_OK : PROTO_EXIT_FAIL; }

int proto_fail(int err, const char *where)
{
    const char *d = proto_detail();
    char line[1200];
    if (d[0]) snprintf(line, sizeof line, "%s: %s: %s", where, proto_strerror(err), d);
    else snprintf(line, sizeof line, "%s: %s", where, proto_strerror(err));
    proto_error("%s", line);
    proto_abort_note(NULL, line);   /* what this stage's abort frames say, unless it heard of an earlier failure */
    return proto_exit_code(err);
}

double proto_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void proto_progress_init(struct proto_progress *p, bool on, const char *label, uint64_t total_rows)
{
    memset(p, 0, sizeof *p);
    p->on = on; p->total_rows = total_rows;
    p->t0 = p->t_last = proto_now();
    snprintf(p->label, sizeof p->label, "%s", label ? label : g_prog);
}
static void progress_print(struct proto_progress *p, uint64_t rows, uint64_t tokens, bool final)
{
    double t = proto_now(), dt = t - p->t0, tps = dt > 0 ? tokens / dt : 0;
    char eta[48] = "";
    if (p->total_rows && rows && rows <= p->total_rows && !final)
        snprintf(eta, sizeof eta, ", %.0f%%, ETA %.0fs", 100.0 * rows / p->total_rows, dt * (double)(p->total_rows - rows) / rows);
    fprintf(stderr, "\r%s: %llu rows, %llu tokens, %.0f tok/s%s%s", p->label, (unsigned long long)rows,
            (unsigned long long)tokens, tps, eta, final ? "\n" : "   ");
    p->t_last = t;
}
void proto_progress_update(struct proto_progress *p, uint64_t rows, uint64_t tokens)
{
    if (!p->on || proto_now() - p->t_last < 0.25) return;
    progress_print(p, rows, tokens, false);
}
void proto_progress_done(struct proto_progress *p, uint64_t rows, uint64_t tokens)
{
    if (p->on) progress_print(p, rows, tokens, true);
}

int proto_cli_threads(const struct proto_cli *cli, int cap)
{
    long n = cli->threads > 0 ? cli->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return (int)(n > cap ? cap : n);
}
