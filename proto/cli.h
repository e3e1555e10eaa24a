/* cli.h - what every stage's main shares: common flags, messages, exit codes, progress.
 *
 * Exit codes (documented in every --help):
 *   0 ok; 1 runtime failure (I/O, bad frame, shape/model mismatch, out of memory);
 *   2 usage error; 3 upstream stream ended without an end frame (truncated).
 * Messages: one line on stderr, "<prog>: error: <where>: <what>".
 * Only main (and these helpers, called from main) print or exit.
 */
#ifndef SAEFLOW_CLI_H
#define SAEFLOW_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "proto.h"

enum { PROTO_EXIT_OK = 0, PROTO_EXIT_FAIL = 1, PROTO_EXIT_USAGE = 2, PROTO_EXIT_TRUNCATED = 3 };

extern const char *g_prog;   /* basename of argv[0] */
extern int g_verbose;        /* 0 = -q (errors only), 1 = default (warnings), 2 = -v */

/* Common flags, spelled the same in every stage. */
#define PROTO_CLI_MAX_OUT 16
struct proto_cli {
    const char *in;        /* -i/--in, default "-" */
    const char *out;       /* -o/--out, default "-"; given several times: "A + B", a fan-out name */
    const char *outs[PROTO_CLI_MAX_OUT]; int n_out;   /* each -o (proto_writer_open(out) opens them all) */
    int progress;          /* --progress / --no-progress; -1 = auto (on when stderr is a tty) */
    int threads;           /* --threads N, 0 = default */
    bool force;            /* -f: write frames to a terminal anyway */
    bool zstd;             /* --zstd: compress tensor payloads */
    bool insecure;         /* --insecure: allow a keyless tcp bind to a non-loopback address */
};
/* Long options of the common flags; put PROTO_CLI_LONGOPTS in a stage's option table and
 * PROTO_CLI_SHORTOPTS in its short string; then hand unknown codes to proto_cli_common. */
#define PROTO_CLI_SHORTOPTS "i:o:qvfhV"
enum { PROTO_OPT_PROGRESS = 1000, PROTO_OPT_NO_PROGRESS, PROTO_OPT_THREADS, PROTO_OPT_ZSTD, PROTO_OPT_INSECURE, PROTO_OPT_KEYS, PROTO_OPT_CHECKSUM, PROTO_OPT_NO_CHECKSUM, PROTO_OPT_FIRST_FREE = 1100 };
#define PROTO_CLI_LONGOPTS \
    {"in", required_argument, 0, 'i'}, {"out", required_argument, 0, 'o'}, \
    {"quiet", no_argument, 0, 'q'}, {"verbose", no_argument, 0, 'v'}, \
    {"force", no_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, \
    {"version", no_argument, 0, 'V'}, {"progress", no_argument, 0, PROTO_OPT_PROGRESS}, \
    {"no-progress", no_argument, 0, PROTO_OPT_NO_PROGRESS}, \
    {"threads", required_argument, 0, PROTO_OPT_THREADS}, {"zstd", no_argument, 0, PROTO_OPT_ZSTD}, \
    {"insecure", no_argument, 0, PROTO_OPT_INSECURE}, {"keys", required_argument, 0, PROTO_OPT_KEYS}, \
    {"checksum", no_argument, 0, PROTO_OPT_CHECKSUM}, {"no-checksum", no_argument, 0, PROTO_OPT_NO_CHECKSUM}

void proto_cli_init(struct proto_cli *cli, const char *argv0);
/* The same for a stage that computes with OpenBLAS (sf-forward, sf-encode, sf-train, sf-reduce):
 * settles the kernel first (proto_blas_init: may re-exec once); -v and the header's stages[]
 * name it. Stages without BLAS skip that start-up cost. */
void proto_cli_init_blas(struct proto_cli *cli, const char *argv0);
/* Handles a common option code. Returns 1 if handled, 0 if not a common option. A repeated -o
 * adds an endpoint (fan-out, proto_writer_open_many): out becomes "A + B" and opens all. 
 * 'h' calls usage(stdout) and exits 0; 'V' prints the version and exits 0; '?' (getopt's
 * unknown option) prints the hint and exits 2. */
int proto_cli_common(struct proto_cli *cli, int c, const char *arg, void (*usage)(FILE *));
/* Text for --help: the common flags and the exit codes. */
void proto_cli_help_common(FILE *fp);
/* The compute threads of a stage: --threads N, else the online CPUs (at least 1), capped at cap
 * (the stage's own limit). Every stage that computes in threads takes its default from here. */
int proto_cli_threads(const struct proto_cli *cli, int cap);
/* After parsing: applies --threads (OpenBLAS, when linked), checks stdout is not a terminal
 * when frames go there (exit 2 unless -f). Pass writes_frames=false for stages whose stdout is
 * JSON/HTML (several -o are then a usage error; so are two -o naming the same file or two "-").
 * Exits 2 when -o is the same file as -i (proto_cli_check_distinct), or when a
 * tcp endpoint binds a non-loopback address without keys or --insecure; says once on stderr
 * that --insecure is in force. */
void proto_cli_finish(struct proto_cli *cli, bool writes_frames);
/* Exit 2 when the output out is the same file as the input in (proto_same_file), or when either
 * is an exposed tcp bind (proto_zmq_check_exposure); called by proto_cli_finish for -o/-i, and
 * by stages for their other inputs and outputs. */
void proto_cli_check_distinct(const char *out, const char *in);
bool proto_cli_progress_on(const struct proto_cli *cli);

/* Checked number parsing: exit 2 with a message on garbage or out of range. */
long long proto_parse_ll(const char *flag, const char *s, long long lo, long long hi);
double proto_parse_double(const char *flag, const char *s, double lo, double hi);

/* Messages. */
void proto_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void proto_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* only with -v */
void proto_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* prints, no exit */
_Noreturn void proto_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void proto_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* exit 2 with hint */
/* Prints "<prog>: error: <where>: <strerror(err)>[: <detail>]" and returns the exit code for
 * err (3 for PROTO_E_TRUNCATED, 1 otherwise). Notes the line as this stage's failure, which
 * the abort frames of its outputs carry (proto_abort_note), unless it heard of an earlier one. */
int proto_fail(int err, const char *where);
int proto_exit_code(int err);

/* Progress line on stderr ("\r... rows, tok/s, ETA"), rate-limited to ~4/s. */
struct proto_progress { bool on; double t0, t_last; uint64_t total_rows; char label[32]; };
void proto_progress_init(struct proto_progress *p, bool on, const char *label, uint64_t total_rows);
void proto_progress_update(struct proto_progress *p, uint64_t rows, uint64_t tokens);
void proto_progress_done(struct proto_progress *p, uint64_t rows, uint64_t tokens);
double proto_now(void);   /* monotonic seconds */

#endif
