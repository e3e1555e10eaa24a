/* sf-report - the report a researcher looks at: sf-reduce JSON in, one self-contained HTML out.
 *
 * Reads one or more sf-reduce JSON documents (proto/PROTOCOL.md §5; one study each, shown side by
 * side) and writes one HTML file: a table of contents, a summary table and a verdict per study at
 * the top, several studies compared on shared axes, then the plots of the original study (the seed;
 * listed in proto/PROTOCOL.md §6) as inline SVG (no network; each with its plotted series as a CSV
 * data: link; one optional inline script for hover, sorting and filtering), then a provenance footer. Blocks missing from a document are skipped with a note.
 * A sweep document (pipelines/sweep.sh, "saeflow_sweep"; given alone) gets a report on a depth axis
 * instead: the similarity profile at every hook, the weight deviation by layer, each SAE study's
 * figures and verdict (the single-study verdict()) by depth (section "sweeps" below).
 * With --png DIR every plot is also written as DIR/<plot id>.png (rsvg-convert).
 * Plot ids and the verdict thresholds are listed in usage().
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <spawn.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "proto.h"
#include "cli.h"
#include "json.h"
#include "hook.h"

extern char **environ;

/* ======================== constants ======================== */
/* Verdict thresholds (documented in usage()). */
#define V_CE_RATIO_OK    1.5    /* finetune ce_delta <= 1.5 x base ce_delta */
#define V_ACTSIM_OK      0.9    /* regular-feature activation similarity mean >= 0.9 */
#define V_PEARSON_OK     0.8    /* density Pearson r >= 0.8 */
#define V_CE_FLOOR       0.01   /* a base ce_delta under 0.01 nats is floored at it for the ratio */
#define V_OUTLIER_MAX    0.01   /* an outlier fraction above 1% in either model: undetermined */
#define V_CE_RATIO_BAD   3.0    /* breaks: ce_delta ratio > 3 */
#define V_ACTSIM_BAD     0.5    /* breaks: activation similarity < 0.5 */
#define V_R2_BAD         0.0    /* breaks: finetune r2_pooled < 0 */
#define MAX_STUDIES      16
#define SCATTER_POINTS   4000   /* above this many features the scatter is drawn as a 2-D histogram */
#define SCATTER_BINS     88     /* cells per axis of that histogram, over log density [-10.5, 0.5] */
#define PAR_LINES        1500   /* above this many features parallel coordinates are binned */
#define PAR_BIN          0.25   /* bin width (log10 density) of the binned parallel coordinates */
#define PAR_XB      0.66    /* parallel coordinates: the finetune axis (0..1 across the plot) */
#define VAL_BINS         40     /* bins of histograms computed here from "values" arrays */
#define PW 430                  /* plot width, height (px) and margins */
#define PH 300
#define ML 62
#define MR 16
#define MT 30
#define MB 46

/* ======================== options ======================== */
struct opts { struct proto_cli cli; const char *png_dir, *title; const char *in[MAX_STUDIES]; int n_in; };

/* ======================== string buffer ======================== */
struct sb { char *p; size_t n, cap; };

static void sb_printf(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *s, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (s->p && s->n + (size_t)k < s->cap) { s->n += (size_t)k; return; }
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->n + (size_t)k + 1) cap *= 2;
        char *q = realloc(s->p, cap);
        if (!q) proto_die(PROTO_EXIT_FAIL, "memory: out of memory (%zu bytes of HTML)", cap);
        s->p = q; s->cap = cap;
    }
}

/* Appends text with & < > " escaped. */
static void sb_esc(struct sb *s, const char *t)
{
    for (; t && *t; t++) {
        switch (*t) {
        case '&': sb_printf(s, "&amp;"); break;
        case '<': sb_printf(s, "&lt;"); break;
        case '>': sb_printf(s, "&gt;"); break;
        case '"': sb_printf(s, "&quot;"); break;
        default: sb_printf(s, "%c", *t);
        }
    }
}

/* ======================== JSON access ======================== */
/* The report's one policy over proto/json.h: every value is optional. A value that is absent,
 * null or of the wrong type reads as NaN (shown as a dash) or NULL (a block or plot skipped with
 * a note), never as an error: the getters leave the default in place. */
static double num_or_nan(const cJSON *o, const char *key)
{
    double v = NAN;
    proto_json_num(o, key, &v);
    return v;
}
static const char *str_or_null(const cJSON *o, const char *key)
{
    const char *v = NULL;
    proto_json_str(o, key, &v);
    return v;
}
/* Numbers of an array of any length, null -> NaN (sf-reduce writes NaN as null, so
 * proto_json_doubles, which wants n finite numbers, does not fit). Returns the count, *out
 * malloc'd (NULL when not an array). */
static size_t num_array(const cJSON *a, double **out)
{
    *out = NULL;
    if (!cJSON_IsArray(a)) return 0;
    size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
    double *v = malloc((n ? n : 1) * sizeof *v);   /* (n) */
    if (!v) return 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    *out = v;
    return n;
}

/* Reads and parses a whole file. On bad JSON sets *line (1-based) and returns NULL. */
static cJSON *load_json(const char *path, int *line, int *err)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    *line = 0; *err = 0;
    if (!fp) { *err = errno; return NULL; }
    struct sb s = {0};
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, fp)) > 0) sb_printf(&s, "%.*s", (int)k, buf);
    int rerr = ferror(fp) ? errno : 0;
    if (fp != stdin) fclose(fp);
    if (rerr) { free(s.p); *err = rerr; return NULL; }
    if (!s.p) sb_printf(&s, "%s", "");
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(s.p, &end, true);
    if (!doc) {
        const char *e = end ? end : cJSON_GetErrorPtr();
        *line = 1;
        for (const char *c = s.p; e && c < e && *c; c++) if (*c == '\n') (*line)++;
    } else if (!cJSON_IsObject(doc)) { cJSON_Delete(doc); doc = NULL; *line = 1; }
    free(s.p);
    return doc;
}

/* ======================== number formatting ======================== */
/* Every value of the tables is printed by one of these (the tests rely on it; fmt_f uses "%.4g"
 * from 1e9 on):
 * fmt_f "%.4f", fmt_i "%.0f", fmt_pct "%.2f%%"; a missing value is an em dash (UTF-8). */
static const char *fmt_f(char *b, double v) { if (isnan(v)) return "\xe2\x80\x94"; snprintf(b, 48, fabs(v) < 1e9 ? "%.4f" : "%.4g", v); return b; }
static const char *fmt_i(char *b, double v) { if (isnan(v)) return "\xe2\x80\x94"; snprintf(b, 48, "%.0f", v); return b; }
static const char *fmt_g(char *b, double v) { if (isnan(v)) return "n/a"; snprintf(b, 48, "%.4g", v); return b; }
static const char *fmt_pct(char *b, double v) { if (isnan(v)) return "\xe2\x80\x94"; snprintf(b, 48, "%.2f%%", 100 * v); return b; }

/* ======================== plots ======================== */
struct plot { struct sb *s; double x0, x1, y0, y1; };

/* Plot units -> px, clamped to a band around the picture (wild inputs stay short, valid SVG). */
static double clampc(double v) { return isnan(v) ? 0 : fmin(fmax(v, -2.0 * PW), 3.0 * PW); }
static double px(const struct plot *p, double x) { return clampc(ML + (x - p->x0) / (p->x1 - p->x0) * (PW - ML - MR)); }
static double py(const struct plot *p, double y) { return clampc(PH - MB - (y - p->y0) / (p->y1 - p->y0) * (PH - MT - MB)); }

/* A "nice" tick step for a range. */
static double nice_step(double range)
{
    double raw = range / 5, m = pow(10, floor(log10(raw))), f = raw / m;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * m;
}

/* One label format for every tick of an axis, so labels never mix formats or repeat: log axes
 * (values are log10) "1eK"; |t| >= 1e4 as k/M/G with the decimals the step needs; 0 < |t| < 1e-3
 * "%.Ne" with the step's digits; else "%.Nf" with the step's decimals. */
struct tickfmt { double unit, eps; const char *suffix; int dec; bool sci, logax; };   /* |v| < eps prints "0" */

static struct tickfmt tick_format(double t0, double t1, double st, bool logax)
{
    struct tickfmt f = {1, 1e-9 * st, "", 0, false, logax};
    double mx = fmax(fabs(t0), fabs(t1));
    if (logax || !(st > 0) || !isfinite(mx)) return f;
    if (mx >= 1e4) {
        f.unit = mx >= 1e9 ? 1e9 : mx >= 1e6 ? 1e6 : 1e3;
        f.suffix = mx >= 1e9 ? "G" : mx >= 1e6 ? "M" : "k";
    } else if (mx < 1e-3 && mx > 0) {
        f.sci = true;
        f.dec = (int)fmax(0, floor(log10(mx)) - floor(log10(st) + 1e-9));
        return f;
    }
    f.dec = (int)fmax(0, -floor(log10(st / f.unit) + 1e-9));
    return f;
}

static void fmt_tick(char *b, double v, const struct tickfmt *f)
{
    if (fabs(v) < f->eps || fabs(v) < 1e-12) v = 0;
    if (f->logax) snprintf(b, 32, "1e%g", v);
    else if (v == 0 && (f->sci || f->unit > 1)) snprintf(b, 32, "0");
    else if (f->sci) snprintf(b, 32, "%.*e", f->dec, v);
    else snprintf(b, 32, "%.*f%s", f->dec, v / f->unit, f->suffix);
}

/* One tick: a mark and its label (class xt / yt) at plot units t. */
static void tick(struct plot *p, bool xaxis, double t, const char *label)
{
    if (xaxis) {
        double x = px(p, t);
        sb_printf(p->s, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>"
                  "<text class=\"xt\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, PH - MB, x, PH - MB + 4, x, PH - MB + 16, label);
    } else {
        double y = py(p, t);
        sb_printf(p->s, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>"
                  "<text class=\"yt\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ML - 4, y, ML, y, ML - 6, y + 4, label);
    }
}

/* Ticks of one axis over [a0, a1] (plot units; logax: values are log10). Under 2 decades a log
 * axis gets ticks at 1, 2, 5 x 10^k; whole: the step is at least 1 (counts). */
static void axis_ticks(struct plot *p, bool xaxis, double a0, double a1, bool logax, bool whole)
{
    char b[32];
    if (logax && a1 - a0 < 2 && a0 > -300 && a1 < 300) {
        static const double mant[3] = {1, 2, 5};
        struct tickfmt f = tick_format(pow(10, a0), pow(10, a1), pow(10, floor(a0)), false);
        for (double d = floor(a0); d <= a1; d += 1)
            for (int k = 0; k < 3; k++) {
                double t = d + log10(mant[k]);
                if (t < a0 - 1e-9 || t > a1 + 1e-9) continue;
                fmt_tick(b, mant[k] * pow(10, d), &f);
                tick(p, xaxis, t, b);
            }
        return;
    }
    double st = logax ? fmax(1, round(nice_step(a1 - a0))) : nice_step(a1 - a0);
    if (whole) st = fmax(st, 1);
    double t0 = ceil(a0 / st - 1e-9) * st;
    struct tickfmt f = tick_format(t0, a1, st, logax);
    for (double t = t0, k = 0; t <= a1 + 1e-9 * st && k < 40; t += st, k++) {
        fmt_tick(b, t, &f);
        tick(p, xaxis, t, b);
    }
}

/* Opens an <svg id=ID role=img> with its title (<title>, aria-label) and a white background. */
static void svg_open(struct sb *s, const char *id, const char *title, int h)
{
    sb_printf(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" role=\"img\" aria-label=\"", id);
    sb_esc(s, title);
    sb_printf(s, "\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">\n",
              PW, h, PW, h);
    sb_printf(s, "<title>"); sb_esc(s, title); sb_printf(s, "</title>\n");
    sb_printf(s, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", PW, h);
    sb_printf(s, "<text x=\"%d\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">", PW / 2);
    sb_esc(s, title); sb_printf(s, "</text>\n");
}

/* Opens a plot: svg_open, the frame, axes with ticks and labels. Axis ranges are in the plotted
 * units; xlog/ylog only change tick labels (values are already log10); an "" x label: no x ticks. */
static void plot_begin(struct plot *p, struct sb *s, const char *id, const char *title, const char *xl,
                       const char *yl, double x0, double x1, bool xlog, double y0, double y1, bool ylog)
{
    if (!(x1 > x0)) { x0 -= 0.5; x1 = x0 + 1; }
    if (!(y1 > y0)) { y1 = y0 + 1; }
    p->s = s; p->x0 = x0; p->x1 = x1; p->y0 = y0; p->y1 = y1;
    svg_open(s, id, title, PH);
    sb_printf(s, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f7f7f7\" stroke=\"#333\"/>\n",
              ML, MT, PW - ML - MR, PH - MT - MB);
    if (xl[0]) axis_ticks(p, true, x0, x1, xlog, false);
    bool whole = strcmp(yl, "count") == 0 || strcmp(yl, "features") == 0 || strcmp(yl, "rows") == 0;
    axis_ticks(p, false, y0, y1, ylog, whole);
    sb_printf(s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (ML + PW - MR) / 2, PH - 10);
    sb_esc(s, xl); sb_printf(s, "</text>\n");
    sb_printf(s, "<text transform=\"translate(14,%d) rotate(-90)\" text-anchor=\"middle\">", (MT + PH - MB) / 2);
    sb_esc(s, yl); sb_printf(s, "</text>\n");
}

/* A note in the top right corner of the plot area (line k = 0, 1, ...). */
static void plot_note(struct plot *p, int k, const char *color, const char *text)
{
    sb_printf(p->s, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"%s\" stroke=\"#f7f7f7\" stroke-width=\"4\" "
              "paint-order=\"stroke\">", PW - MR - 6, MT + 16 + 14 * k, color);   /* halo: readable over bars and lines */
    sb_esc(p->s, text); sb_printf(p->s, "</text>\n");
}

static void plot_end(struct plot *p) { sb_printf(p->s, "</svg>\n"); }

/* Bin index of position t (in bin widths) among n bins, clamped in double before the cast
 * (a float-to-int conversion out of range is undefined). */
static int bin_of(double t, int n)
{
    t = floor(t);
    return t < 0 || isnan(t) ? 0 : t >= n ? n - 1 : (int)t;
}

/* Bars: bin k spans [e[k], e[k+1]) in plot units, height c[k], fill opacity op; each with its
 * bin and count as a <title> (hover), prefixed by who when not NULL; logx: edges are log10. */
static void bars(struct plot *p, const double *e, const double *c, size_t n, const char *fill, double op, bool logx, const char *who)
{
    for (size_t k = 0; k < n; k++) {
        if (!(c[k] > 0) || !isfinite(e[k]) || !isfinite(e[k + 1]) || e[k + 1] <= p->x0 || e[k] >= p->x1) continue;
        double xa = px(p, e[k]), xb = px(p, e[k + 1]), y = py(p, fmin(c[k], p->y1));
        sb_printf(p->s, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" fill-opacity=\"%.2f\"><title>%s%s[%.4g, %.4g): %.0f</title></rect>\n",
                  xa, y, fmax(xb - xa, 0.6), PH - MB - y, fill, op, who ? who : "", who ? " " : "",
                  logx ? pow(10, e[k]) : e[k], logx ? pow(10, e[k + 1]) : e[k + 1], c[k]);
    }
}

/* ======================== report state ======================== */
struct study {
    const char *path;
    cJSON *doc;
    const cJSON *blk[2];      /* base, finetune (or "model" in blk[0], blk[1] NULL) */
    const char *names[2];    /* "base"/"finetune" or "model" */
    int n_models;
};

struct report {
    struct sb html;
    const char *png_dir;
    int png_count;
    int err;                 /* first PNG failure (errno-ish), reported by main */
    struct sb csv;           /* the plotted series of the figure being drawn (fig_end links it) */
    char err_where[4200];
};

/* Writes the plot (svg text s[from..]) as PNG_DIR/ID.png via rsvg-convert. */
static void emit_png(struct report *r, const char *id, const char *svg, size_t len)
{
    if (!r->png_dir || r->err) return;
    char svgp[4096], pngp[4096];
    snprintf(svgp, sizeof svgp, "%s/%s.svg", r->png_dir, id);
    snprintf(pngp, sizeof pngp, "%s/%s.png", r->png_dir, id);
    FILE *fp = fopen(svgp, "wb");
    errno = 0;
    bool bad = !fp || fwrite(svg, 1, len, fp) != len;
    int e = errno;
    if (fp && fclose(fp) != 0 && !bad) { bad = true; e = errno; }
    if (bad) {
        r->err = e ? e : EIO; snprintf(r->err_where, sizeof r->err_where, "%s", svgp);
        if (fp) remove(svgp);
        return;
    }
    char tmp[4200];
    if (proto_tmp_create(pngp, tmp, sizeof tmp) != PROTO_OK) {
        r->err = errno ? errno : EIO; snprintf(r->err_where, sizeof r->err_where, "%s", pngp);
        remove(svgp);
        return;
    }
    char *argv[] = {"rsvg-convert", "-b", "white", "-o", tmp, svgp, NULL};
    pid_t pid;
    int st = 0;
    if (posix_spawnp(&pid, "rsvg-convert", NULL, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) < 0 ||
        !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        r->err = ENOENT; snprintf(r->err_where, sizeof r->err_where, "rsvg-convert %s (is librsvg2-bin installed?)", svgp);
        unlink(tmp);
    } else if (proto_tmp_commit(tmp, pngp) != PROTO_OK) {   /* the PNG is whole or absent */
        r->err = errno ? errno : EIO; snprintf(r->err_where, sizeof r->err_where, "%s", pngp);
    } else r->png_count++;
    remove(svgp);
}

/* Starts a figure: returns the html offset where the svg starts. */
static size_t fig_begin(struct report *r) { sb_printf(&r->html, "<figure>"); return r->html.n; }
/* Appends a row of the figure's CSV (the plotted series; the first row is its header); a field
 * that prints as nan or inf is left empty (a missing value). */
static void csv_row(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void csv_row(struct report *r, const char *fmt, ...)
{
    char b[512];
    va_list ap;
    va_start(ap, fmt); vsnprintf(b, sizeof b, fmt, ap); va_end(ap);
    for (char *f = b; f; ) {
        char *e = strchr(f, ',');
        size_t n = e ? (size_t)(e - f) : strlen(f);
        const char *g = *f == '-' ? f + 1 : f;
        bool bad = (n == 3 || n == 4) && (strncmp(g, "nan", 3) == 0 || strncmp(g, "inf", 3) == 0) && (size_t)(g - f) + 3 == n;
        if (!bad) sb_printf(&r->csv, "%.*s", (int)n, f);
        if (e) sb_printf(&r->csv, ",");
        f = e ? e + 1 : NULL;
    }
    sb_printf(&r->csv, "\n");
}

/* The figure's CSV (r->csv, nothing when empty) as a link whose href is a data: URI (text/csv,
 * percent-encoded: the page stays one file); r->csv is emptied. */
static void csv_link(struct report *r, const char *id)
{
    struct sb *s = &r->html;
    if (!r->csv.n) return;
    sb_printf(s, " <a class=\"csv\" download=\"%s.csv\" title=\"the plotted series as CSV\" href=\"data:text/csv;charset=utf-8,", id);
    for (size_t i = 0; i < r->csv.n; i++) {
        unsigned char c = (unsigned char)r->csv.p[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == ',';
        if (keep) sb_printf(s, "%c", c); else sb_printf(s, "%%%02X", c);
    }
    sb_printf(s, "\">CSV</a>");
    r->csv.n = 0;
}

static void fig_end(struct report *r, const char *id, size_t at, const char *caption)
{
    emit_png(r, id, r->html.p + at, r->html.n - at);
    sb_printf(&r->html, "<figcaption>");
    sb_esc(&r->html, caption);
    csv_link(r, id);
    sb_printf(&r->html, "</figcaption></figure>\n");
}

static void note(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct report *r, const char *fmt, ...)
{
    char b[1024];
    va_list ap;
    va_start(ap, fmt); vsnprintf(b, sizeof b, fmt, ap); va_end(ap);
    sb_printf(&r->html, "<p class=\"note\">");
    sb_esc(&r->html, b);
    sb_printf(&r->html, "</p>\n");
}

/* ---- histogram plots ---- */
/* A HIST {edges, counts} read for drawing: e the edges in plot units (log10 when logx; a first
 * edge of 0 is put one bin-width left of the second), raw the edges as given, bins k0..k1 drawn
 * (trim: the non-empty bins plus one each side), [x0, x1] their range. */
struct hdat { double *e, *raw, *c; size_t nc, k0, k1; double x0, x1, ymax, tot; };

static void hist_free(struct hdat *d) { free(d->e); free(d->raw); free(d->c); }

/* Reads HIST into d; false (d empty) when malformed. */
static bool hist_load(const cJSON *h, bool logx, bool trim, struct hdat *d)
{
    memset(d, 0, sizeof *d);
    size_t ne = num_array(proto_json_get(h, "edges"), &d->e);
    num_array(proto_json_get(h, "edges"), &d->raw);
    d->nc = num_array(proto_json_get(h, "counts"), &d->c);
    if (!(d->nc > 0 && ne == d->nc + 1 && d->raw)) { hist_free(d); memset(d, 0, sizeof *d); return false; }
    double *e = d->e, *c = d->c;
    if (logx) {
        for (size_t k = 0; k < ne; k++) e[k] = e[k] > 0 ? log10(e[k]) : NAN;
        if (isnan(e[0]) && ne > 2 && isfinite(e[1]) && isfinite(e[2])) e[0] = e[1] - (e[2] - e[1]);
    }
    d->x0 = INFINITY; d->x1 = -INFINITY; d->k0 = d->nc; d->k1 = 0;
    for (size_t k = 0; k < d->nc; k++) { if (c[k] > d->ymax) d->ymax = c[k]; if (c[k] > 0) d->tot += c[k]; }
    for (size_t k = 0; k < d->nc; k++) {
        if (trim && !(c[k] > 0)) continue;
        size_t a = trim && k > 0 ? k - 1 : k, b = trim && k + 2 < ne ? k + 2 : k + 1;
        if (isfinite(e[a])) d->x0 = fmin(d->x0, e[a]);
        if (isfinite(e[b])) d->x1 = fmax(d->x1, e[b]);
        if (a < d->k0) d->k0 = a;
        if (b - 1 > d->k1) d->k1 = b - 1;
    }
    if (!isfinite(d->x0) || !isfinite(d->x1)) {
        d->x0 = isfinite(e[0]) ? e[0] : 0; d->x1 = isfinite(e[ne - 1]) ? e[ne - 1] : d->x0 + 1;
        d->k0 = 0; d->k1 = d->nc - 1;
    }
    return true;
}

/* The drawn bins of d as CSV rows "[who,]bin_lo,bin_hi,count" (edges as given). */
static void hist_csv(struct report *r, const struct hdat *d, const char *who)
{
    for (size_t k = d->k0; k <= d->k1 && k < d->nc; k++)
        csv_row(r, "%s%s%.10g,%.10g,%.10g", who ? who : "", who ? "," : "", d->raw[k], d->raw[k + 1], d->c[k]);
}

/* Plots HIST {edges, counts}. trim: the x range is that of the non-empty bins (plus one bin each
 * side) rather than all edges. logx: x axis is log10 of the edges. Returns false (and writes
 * nothing) when malformed. */
static bool hist_plot(struct report *r, const char *id, const cJSON *h, const char *title, const char *xl,
                      bool logx, bool trim, double vline, const char *vlabel, const char *extra)
{
    struct hdat d;
    if (!hist_load(h, logx, trim, &d)) return false;
    if (logx && isfinite(vline)) vline = vline > 0 ? log10(vline) : NAN;
    double x0 = d.x0, x1 = d.x1;
    if (isfinite(vline)) { x0 = fmin(x0, vline); x1 = fmax(x1, vline); }
    size_t at = fig_begin(r);
    struct plot p;
    plot_begin(&p, &r->html, id, title, xl, "count", x0, x1, logx, 0, d.ymax * 1.3 + (d.ymax == 0), false);
    bars(&p, d.e, d.c, d.nc, "#4c78a8", 1, logx, NULL);
    csv_row(r, "bin_lo,bin_hi,count");
    hist_csv(r, &d, NULL);
    char b[160];
    int k = 0;
    if (isfinite(vline)) {
        double x = px(&p, vline);
        sb_printf(&r->html, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6,3\"/>\n",
                  x, MT, x, PH - MB);
        plot_note(&p, k++, "#d62728", vlabel);
    }
    if (extra) plot_note(&p, k++, "#000", extra);
    snprintf(b, sizeof b, "total %.0f", d.tot);
    plot_note(&p, k++, "#555", b);
    double below = num_or_nan(h, "below"), above = num_or_nan(h, "above"), nn = num_or_nan(h, "nan");
    if (below > 0 || above > 0 || nn > 0) {
        snprintf(b, sizeof b, "outside range: %.0f below, %.0f above, %.0f NaN", fmax(below, 0), fmax(above, 0), fmax(nn, 0));
        plot_note(&p, k++, "#555", b);
    }
    plot_end(&p);
    fig_end(r, id, at, title);
    hist_free(&d);
    return true;
}

/* Base and finetune HISTs (h[m], named nm[m]) on shared axes: each model's bars in its colour,
 * half transparent, over the union of both x ranges (trim: their non-empty bins) and one count
 * axis; a legend with ex[m] after each name; vl[m] (NaN: none) a dashed line in m's colour. */
static bool overlay_hist(struct report *r, const char *id, const cJSON *const h[2], const char *const nm[2], const char *title,
                         const char *xl, bool logx, bool trim, const double vl[2], const char *const ex[2])
{
    static const char *const col[2] = {"#4c78a8", "#e45756"};
    struct hdat d[2];
    if (!hist_load(h[0], logx, trim, &d[0])) return false;
    if (!hist_load(h[1], logx, trim, &d[1])) { hist_free(&d[0]); return false; }
    double x0 = fmin(d[0].x0, d[1].x0), x1 = fmax(d[0].x1, d[1].x1), ymax = fmax(d[0].ymax, d[1].ymax), v[2];
    for (int m = 0; m < 2; m++) {
        v[m] = logx && isfinite(vl[m]) ? (vl[m] > 0 ? log10(vl[m]) : NAN) : vl[m];
        if (isfinite(v[m])) { x0 = fmin(x0, v[m]); x1 = fmax(x1, v[m]); }
    }
    size_t at = fig_begin(r);
    struct plot p;
    plot_begin(&p, &r->html, id, title, xl, "count", x0, x1, logx, 0, ymax * 1.35 + (ymax == 0), false);
    csv_row(r, "model,bin_lo,bin_hi,count");
    char b[200];
    for (int m = 0; m < 2; m++) {
        bars(&p, d[m].e, d[m].c, d[m].nc, col[m], 0.5, logx, nm[m]);
        hist_csv(r, &d[m], nm[m]);
        if (isfinite(v[m]))
            sb_printf(&r->html, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"6,3\"/>\n",
                      px(&p, v[m]), MT, px(&p, v[m]), PH - MB, col[m]);
        snprintf(b, sizeof b, "\xe2\x96\xa0 %s (total %.0f)%s%s", nm[m], d[m].tot, ex[m] ? ": " : "", ex[m] ? ex[m] : "");
        plot_note(&p, m, col[m], b);
        hist_free(&d[m]);
    }
    plot_end(&p);
    fig_end(r, id, at, title);
    return true;
}

/* A plot with nothing to draw (an empty set): a short svg with its title and the message, the id
 * kept so links and the plot list stay whole; no axes. */
static void empty_plot(struct report *r, const char *id, const char *title, const char *msg)
{
    enum { EH = 64 };
    size_t at = fig_begin(r);
    char t[320];
    snprintf(t, sizeof t, "%s: %s", title, msg);
    svg_open(&r->html, id, t, EH);
    sb_printf(&r->html, "<text x=\"%d\" y=\"46\" text-anchor=\"middle\" fill=\"#555\">", PW / 2);
    sb_esc(&r->html, msg); sb_printf(&r->html, "</text>\n</svg>\n");
    fig_end(r, id, at, title);
}

/* Histogram of a "values" array computed here (VAL_BINS bins over [lo, hi]; NaN/null skipped; a
 * lo/hi of NaN: the data's). An empty set is said in words; equal values get a narrow range
 * next to them (on the open side when lo or hi is fixed) and a note. */
static bool values_plot(struct report *r, const char *id, const cJSON *arr, double lo, double hi, const char *title,
                        const char *xl, const char *extra, const char *what /* "features" or "rows" */)
{
    double *v;
    size_t n = num_array(arr, &v), m = 0;
    if (!v) return false;
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) if (isfinite(v[i])) { mn = fmin(mn, v[i]); mx = fmax(mx, v[i]); m++; }
    char b[96];
    if (m == 0) {
        if (n) snprintf(b, sizeof b, "no %s with a defined value (%zu NaN/undefined)", what, n);
        else snprintf(b, sizeof b, "no %s in this set", what);
        empty_plot(r, id, title, b); free(v);
        return true;
    }
    bool fixlo = !isnan(lo), fixhi = !isnan(hi);
    if (!fixlo) lo = mn;
    if (!fixhi) hi = mx;
    if (!(hi > lo)) {
        double w = fmax(0.1 * fabs(mx), 0.1);
        if (fixhi) lo = hi - w; else if (fixlo) hi = lo + w; else { lo -= w / 2; hi += w / 2; }
    }
    double e[VAL_BINS + 1], c[VAL_BINS] = {0};
    for (int k = 0; k <= VAL_BINS; k++) e[k] = lo + (hi - lo) * k / VAL_BINS;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        c[bin_of((v[i] - lo) / (hi - lo) * VAL_BINS, VAL_BINS)] += 1;
    }
    double ymax = 0;
    for (int k = 0; k < VAL_BINS; k++) ymax = fmax(ymax, c[k]);
    size_t at = fig_begin(r);
    struct plot p;
    plot_begin(&p, &r->html, id, title, xl, what, lo, hi, false, 0, ymax * 1.3 + (ymax == 0), false);
    bars(&p, e, c, VAL_BINS, "#54a24b", 1, false, NULL);
    csv_row(r, "bin_lo,bin_hi,%s", what);
    for (int j = 0; j < VAL_BINS; j++) csv_row(r, "%.10g,%.10g,%.0f", e[j], e[j + 1], c[j]);
    int k = 0;
    if (extra) plot_note(&p, k++, "#000", extra);
    snprintf(b, sizeof b, "%zu %s (%zu NaN/undefined)", m, what, n - m);
    plot_note(&p, k++, "#555", b);
    if (mn == mx) { snprintf(b, sizeof b, "every value is %.4g", mn); plot_note(&p, k++, "#555", b); }
    plot_end(&p);
    fig_end(r, id, at, title);
    free(v);
    return true;
}

/* Mean of the array by index (positions or rows). */
static bool line_plot(struct report *r, const char *id, const cJSON *arr, const char *title, const char *xl, const char *yl)
{
    double *v;
    size_t n = num_array(arr, &v);
    if (!v || n == 0) { free(v); return false; }
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) if (isfinite(v[i])) { mn = fmin(mn, v[i]); mx = fmax(mx, v[i]); }
    if (!isfinite(mn)) { mn = 0; mx = 1; }
    double pad = (mx - mn) * 0.05 + 1e-9;
    size_t at = fig_begin(r);
    struct plot p;
    plot_begin(&p, &r->html, id, title, xl, yl, 0, (double)(n > 1 ? n - 1 : 1), false, mn - pad, mx + pad, false);
    sb_printf(&r->html, "<polyline fill=\"none\" stroke=\"#4c78a8\" stroke-width=\"1.5\" points=\"");
    /* at most ~2 points per pixel column: stride through long arrays */
    size_t stride = n > 2 * PW ? n / (2 * PW) : 1;
    csv_row(r, "index,%s", yl);
    for (size_t i = 0; i < n; i += stride)
        if (isfinite(v[i])) { sb_printf(&r->html, "%.1f,%.1f ", px(&p, (double)i), py(&p, v[i])); csv_row(r, "%zu,%.10g", i, v[i]); }
    sb_printf(&r->html, "\"><title>");
    sb_esc(&r->html, title);
    sb_printf(&r->html, "</title></polyline>\n");
    for (size_t i = 0; i < n; i += stride)   /* hover: a transparent dot per point with its value */
        if (isfinite(v[i])) sb_printf(&r->html, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill-opacity=\"0\"><title>%zu: %.4g</title></circle>",
                                      px(&p, (double)i), py(&p, v[i]), i, v[i]);
    sb_printf(&r->html, "\n");
    plot_end(&p);
    fig_end(r, id, at, title);
    free(v);
    return true;
}

/* ---- density scatter and parallel coordinates ---- */
/* Counts the (base, finetune) log-density pairs in an nb x nb grid over [-10.5, 0.5]^2 (cells
 * 11/nb wide; non-finite pairs skipped): cnt (nb, nb), [base bin][finetune bin]. Returns the
 * largest count. */
static unsigned density_grid(const double *lb, const double *lf, size_t n, int nb, unsigned *cnt)
{
    const double w = 11.0 / nb;
    unsigned max = 0;
    memset(cnt, 0, (size_t)nb * nb * sizeof *cnt);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(lb[i]) || !isfinite(lf[i])) continue;
        unsigned *c = &cnt[bin_of((lb[i] + 10.5) / w, nb) * nb + bin_of((lf[i] + 10.5) / w, nb)];
        if (++*c > max) max = *c;
    }
    return max;
}

/* Least-squares fit and Pearson r of (x[i], y[i]) over the finite pairs (live: only those with
 * both above -9, the dead threshold: features not dead in either model); m pairs. */
struct fit { double slope, icpt, r, m; };
static struct fit lsq(const double *x, const double *y, size_t n, bool live)
{
    double sx = 0, sy = 0, m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]) && (!live || (x[i] > -9 && y[i] > -9))) { sx += x[i]; sy += y[i]; m++; }
    struct fit f = {NAN, NAN, NAN, m};
    if (m < 2) return f;
    double mx = sx / m, my = sy / m, vx = 0, vy = 0, c = 0;   /* two-pass: centred sums */
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]) && (!live || (x[i] > -9 && y[i] > -9))) {
            vx += (x[i] - mx) * (x[i] - mx); vy += (y[i] - my) * (y[i] - my); c += (x[i] - mx) * (y[i] - my);
        }
    f.slope = vx > 0 ? c / vx : NAN; f.icpt = my - f.slope * mx;
    f.r = vx > 0 && vy > 0 ? c / sqrt(vx * vy) : NAN;
    return f;
}

/* The density Pearson r over live features of a study (from base/finetune log_density), NaN when
 * the arrays are missing or differ in length; *m the live count. */
static double live_r(const struct study *st, double *m)
{
    double *lb, *lf, r = NAN;
    *m = 0;
    if (st->n_models != 2) return NAN;
    size_t nb = num_array(proto_json_get(st->blk[0], "log_density"), &lb), nf = num_array(proto_json_get(st->blk[1], "log_density"), &lf);
    if (lb && lf && nb == nf) { struct fit f = lsq(lb, lf, nb, true); r = f.r; *m = f.m; }
    free(lb); free(lf);
    return r;
}

/* A fit line over the plot's x range, and its legend line k (text at the top left). */
static void fit_draw(struct plot *p, const struct fit *f, const char *color, const char *what, int k)
{
    char b[160], rb[48];
    if (isfinite(f->slope) && isfinite(f->icpt)) {
        sb_printf(p->s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"><title>%s fit: y = %.3f x %+.3f</title></line>\n",
                  px(p, -10.5), py(p, f->slope * -10.5 + f->icpt), px(p, 0.5), py(p, f->slope * 0.5 + f->icpt), color, what, f->slope, f->icpt);
        snprintf(b, sizeof b, "%s: r = %s   fit: y = %.3f x %+.3f", what, fmt_f(rb, f->r), f->slope, f->icpt);
    } else snprintf(b, sizeof b, "%s: r = %s   (no regression line: degenerate data)", what, fmt_f(rb, f->r));
    sb_printf(p->s, "<text x=\"%d\" y=\"%d\" fill=\"%s\" stroke=\"#f7f7f7\" stroke-width=\"4\" paint-order=\"stroke\">", ML + 8, MT + 16 + 14 * k, color);
    sb_esc(p->s, b); sb_printf(p->s, "</text>\n");
}

/* The scatter's points (CSV: feature, base, finetune), or above SCATTER_POINTS a 2-D histogram
 * (CSV: its cells). */
static void scatter_points(struct report *r, struct plot *p, const double *lb, const double *lf, size_t n)
{
    struct sb *s = &r->html;
    if (n <= SCATTER_POINTS) {
        csv_row(r, "feature,base_log10_density,finetune_log10_density");
        for (size_t i = 0; i < n; i++)
            if (isfinite(lb[i]) && isfinite(lf[i])) {
                sb_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"#4c78a8\" fill-opacity=\"0.45\"><title>feature %zu: base %.3f, finetune %.3f</title></circle>\n",
                          px(p, lb[i]), py(p, lf[i]), i, lb[i], lf[i]);
                csv_row(r, "%zu,%.10g,%.10g", i, lb[i], lf[i]);
            }
        return;
    }
    static unsigned grid[SCATTER_BINS][SCATTER_BINS];   /* [x bin][y bin] counts */
    const double w = 11.0 / SCATTER_BINS;
    unsigned gmax = density_grid(lb, lf, n, SCATTER_BINS, &grid[0][0]);
    csv_row(r, "base_lo,base_hi,finetune_lo,finetune_hi,features");
    for (int a = 0; a < SCATTER_BINS; a++)
        for (int b = 0; b < SCATTER_BINS; b++) {
            if (!grid[a][b]) continue;
            double o = 0.3 + 0.7 * log1p(grid[a][b]) / log1p(gmax);
            double x = px(p, -10.5 + a * w), y = py(p, -10.5 + (b + 1) * w);
            sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.2f\" fill=\"#4c78a8\" fill-opacity=\"%.2f\"><title>%u features</title></rect>\n",
                      x, y, px(p, w) - px(p, 0), py(p, 0) - py(p, w), o, grid[a][b]);
            csv_row(r, "%.6g,%.6g,%.6g,%.6g,%u", -10.5 + a * w, -10.5 + (a + 1) * w, -10.5 + b * w, -10.5 + (b + 1) * w, grid[a][b]);
        }
}

/* Log densities base vs finetune: the points, y = x, the fit over all features (red; its r is
 * r_json when given) and over live features only (green: not dead in either, log10 > -9). */
static bool density_scatter(struct report *r, const char *id, const double *lb, const double *lf, size_t n, double r_json)
{
    struct fit all = lsq(lb, lf, n, false), live = lsq(lb, lf, n, true);
    if (all.m < 2) return false;
    if (isfinite(r_json)) all.r = r_json;
    size_t at = fig_begin(r);
    struct plot p;
    plot_begin(&p, &r->html, id, "Feature log10 density: base vs finetune", "base log10 density",
               "finetune log10 density", -10.5, 0.5, false, -10.5, 0.5, false);
    struct sb *s = &r->html;
    scatter_points(r, &p, lb, lf, n);
    sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"3,3\"/>\n",
              px(&p, -10.5), py(&p, -10.5), px(&p, 0.5), py(&p, 0.5));
    char b[128];
    fit_draw(&p, &all, "#d62728", "all", 0);
    snprintf(b, sizeof b, "live (%.0f)", live.m);
    fit_draw(&p, &live, "#2a8a3a", b, 1);
    snprintf(b, sizeof b, "%.0f features%s", all.m, n > SCATTER_POINTS ? " (2-D histogram, shade = log count)" : "");
    sb_printf(s, "<text x=\"%d\" y=\"%d\" fill=\"#555\" stroke=\"#f7f7f7\" stroke-width=\"4\" paint-order=\"stroke\">", ML + 8, MT + 44); sb_esc(s, b); sb_printf(s, "</text>\n");
    plot_end(&p);
    fig_end(r, id, at, "Density scatter: least-squares lines over all features (red) and over live features, not dead in "
            "either model (green); y = x dashed");
    return true;
}

static const char *dens_color(double lb)
{
    return lb <= -8 ? "#d62728" : lb >= -5 && lb <= -1 ? "#4c78a8" : "#999999";
}

static bool density_parallel(struct report *r, const char *id, const double *lb, const double *lf, size_t n)
{
    size_t at = fig_begin(r);
    struct plot p;
    plot_begin(&p, &r->html, id, "Parallel coordinates of feature log10 densities", "",
               "log10 density", 0, 1, false, -10.5, 0.5, false);
    struct sb *s = &r->html;
    double xa = px(&p, 0.06), xb = px(&p, PAR_XB);   /* the legend sits right of xb, off the bands */
    if (n <= PAR_LINES) {   /* data-b, data-f: the line's densities, for the range filter (inline script) */
        csv_row(r, "feature,base_log10_density,finetune_log10_density");
        for (size_t i = 0; i < n; i++)
            if (isfinite(lb[i]) && isfinite(lf[i])) {
                sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-opacity=\"0.3\" data-b=\"%.3f\" data-f=\"%.3f\">"
                          "<title>feature %zu: base %.3f, finetune %.3f</title></line>\n", xa, py(&p, lb[i]), xb, py(&p, lf[i]), dens_color(lb[i]),
                          lb[i], lf[i], i, lb[i], lf[i]);
                csv_row(r, "%zu,%.10g,%.10g", i, lb[i], lf[i]);
            }
    } else {
        csv_row(r, "base_bin_centre,finetune_bin_centre,features");
        enum { NB = 44 };   /* 11 / PAR_BIN bins over [-10.5, 0.5] */
        static unsigned cnt[NB][NB];
        unsigned cmax = density_grid(lb, lf, n, NB, &cnt[0][0]);
        for (int a = 0; a < NB; a++)
            for (int b = 0; b < NB; b++) {
                if (!cnt[a][b]) continue;
                double ya = -10.5 + (a + 0.5) * PAR_BIN, yb = -10.5 + (b + 0.5) * PAR_BIN, t = log1p(cnt[a][b]) / log1p(cmax);
                sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-opacity=\"%.2f\" stroke-width=\"%.1f\" "
                          "data-b=\"%.3f\" data-f=\"%.3f\"><title>%u features</title></line>\n",
                          xa, py(&p, ya), xb, py(&p, yb), dens_color(ya), 0.1 + 0.8 * t, 0.5 + 3 * t, ya, yb, cnt[a][b]);
                csv_row(r, "%.4g,%.4g,%u", ya, yb, cnt[a][b]);
            }
    }
    sb_printf(s, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\" stroke-width=\"2\"/>"
              "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\" stroke-width=\"2\"/>\n",
              xa, MT, xa, PH - MB, xb, MT, xb, PH - MB);
    sb_printf(s, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">base</text>"
              "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">finetune</text>\n",
              xa, PH - MB + 30, xb, PH - MB + 30);
    static const char *const leg[][2] = {{"#d62728", "dead in base"}, {"#d62728", "(log10 <= -8)"},
                                         {"#4c78a8", "regular in base"}, {"#4c78a8", "(-5 to -1)"},
                                         {"#999999", "other"}, {"#555", ""}, {"#555", "binned 0.25,"}, {"#555", "width and"},
                                         {"#555", "opacity: log"}, {"#555", "count"}};
    for (int k = 0; k < (n > PAR_LINES ? 10 : 5); k++) {
        if (!leg[k][1][0]) continue;
        sb_printf(s, "<text class=\"legend\" x=\"%.1f\" y=\"%d\" fill=\"%s\" font-size=\"10\">", xb + 10, MT + 14 + 13 * k, leg[k][0]);
        sb_esc(s, leg[k][1]); sb_printf(s, "</text>\n");
    }
    plot_end(&p);
    fig_end(r, id, at, "Where each feature's base density lands in the finetune");
    return true;
}

/* ======================== verdict ======================== */
/* Appends ", " (when w > 0) and a formatted part to why (n), at *w. */
static void why_add(char *why, size_t n, size_t *w, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void why_add(char *why, size_t n, size_t *w, const char *fmt, ...)
{
    if (*w >= n) return;
    if (*w) *w += (size_t)snprintf(why + *w, n - *w, ", ");
    if (*w >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(why + *w, n - *w, fmt, ap);
    va_end(ap);
    if (k > 0) *w += (size_t)k;
}

/* The CE delta ratio finetune / base for the verdict, NaN when a delta is missing. A base delta
 * under V_CE_FLOOR nats (a near-perfect SAE, or a negative one: splicing lowers the base's loss)
 * is floored at V_CE_FLOOR, so the ratio compares the finetune's delta with that floor instead of
 * dividing by almost nothing; a negative finetune delta (splicing lowers its loss) counts as 0.
 * note gets what was adjusted ("" when nothing). */
static double ce_ratio(double db, double df, char *note, size_t n)
{
    note[0] = 0;
    if (isnan(db) || isnan(df)) return NAN;
    size_t w = 0;
    if (db < V_CE_FLOOR) why_add(note, n, &w, "base CE delta %.4f nats floored at %.2f", db, V_CE_FLOOR);
    if (df < 0) why_add(note, n, &w, "finetune CE delta %.4f nats: splicing the SAE in lowers its loss", df);
    return (df < 0 ? 0 : df) / (db < V_CE_FLOOR ? V_CE_FLOOR : db);
}

/* Inputs the verdict cannot rest on: an outlier fraction above V_OUTLIER_MAX in either model
 * (outliers keep their activation in the spliced pass: CE spliced and R² cover the rest only). */
static bool untrusted(const struct study *st, char *why, size_t n, size_t *w)
{
    bool bad = false;
    for (int m = 0; m < st->n_models; m++) {
        double f = num_or_nan(st->blk[m], "outlier_fraction");
        if (!(f > V_OUTLIER_MAX)) continue;
        why_add(why, n, w, "%.2f%% of the %s tokens are outliers (over %.0f%%: CE spliced and R² cover only the other %.2f%%)",
                100 * f, st->names[m], 100 * V_OUTLIER_MAX, 100 * (1 - f));
        bad = true;
    }
    return bad;
}

/* Writes the verdict text of a study into b; returns a css class. */
static const char *verdict(const struct study *st, char *b, size_t bn)
{
    const cJSON *base = st->n_models == 2 ? st->blk[0] : NULL, *ft = st->n_models == 2 ? st->blk[1] : NULL;
    const cJSON *tr = proto_json_get(st->doc, "transfer");
    if (!base || !ft) { snprintf(b, bn, "no verdict: a single-model study (no base/finetune pair)"); return "na"; }
    char cew[256], why[512] = "", bad[768] = "";
    size_t w = 0, wb = 0;
    double ratio = ce_ratio(num_or_nan(base, "ce_delta"), num_or_nan(ft, "ce_delta"), cew, sizeof cew);
    double as = num_or_nan(proto_json_get(tr, "activation_similarity"), "mean"), pr = num_or_nan(tr, "density_pearson"), r2 = num_or_nan(ft, "r2_pooled");
    if (isfinite(ratio)) why_add(why, sizeof why, &w, cew[0] ? "CE delta ratio %.2f (%s)" : "CE delta ratio %.2f%s", ratio, cew);
    if (isfinite(as)) why_add(why, sizeof why, &w, "activation similarity %.3f", as);
    if (isfinite(pr)) why_add(why, sizeof why, &w, "density r %.3f", pr);
    if (isfinite(r2)) why_add(why, sizeof why, &w, "finetune R² %.3f", r2);
    if (untrusted(st, bad, sizeof bad, &wb)) {   /* CE spliced and R² are not to be trusted; the feature figures cover every token */
        const char *feat = isfinite(as) && as < V_ACTSIM_BAD ? "; by its features alone (activation similarity, density r) it does not transfer"
                         : isfinite(as) && isfinite(pr) && as >= V_ACTSIM_OK && pr >= V_PEARSON_OK ? "; by its features alone it transfers" : "";
        snprintf(b, bn, "undetermined: %s%s (figures as measured: %s)", bad, feat, w ? why : "none");
        return "na";
    }
    if ((isfinite(ratio) && ratio > V_CE_RATIO_BAD) || (isfinite(as) && as < V_ACTSIM_BAD) || (isfinite(r2) && r2 < V_R2_BAD)) {
        snprintf(b, bn, "SAE does not transfer (%s)", why); return "bad";
    }
    if (!isfinite(ratio) || !isfinite(as) || !isfinite(pr)) {
        char miss[96] = "";
        size_t k = 0;
        if (!isfinite(ratio)) why_add(miss, sizeof miss, &k, "CE delta");
        if (!isfinite(as)) why_add(miss, sizeof miss, &k, "activation similarity");
        if (!isfinite(pr)) why_add(miss, sizeof miss, &k, "density r");
        snprintf(b, bn, "undetermined: missing %s (%s)", miss, w ? why : "nothing else known");
        return "na";
    }
    if (ratio <= V_CE_RATIO_OK && as >= V_ACTSIM_OK && pr >= V_PEARSON_OK) { snprintf(b, bn, "SAE transfers (%s)", why); return "ok"; }
    snprintf(b, bn, "SAE transfers partly (%s)", why);
    return "mid";
}

/* ======================== summary table ======================== */
enum fmt { F_F, F_I, F_PCT };
struct row { const char *label, *key, *sub; enum fmt f; };
static const struct row MODEL_ROWS[] = {
    {"L0 (active features / token)", "l0", NULL, F_F}, {"L1", "l1", NULL, F_F},
    {"CE clean (nats)", "ce_clean", NULL, F_F}, {"CE spliced (nats)", "ce_spliced", NULL, F_F},
    {"CE ablated (nats)", "ce_ablated", NULL, F_F}, {"CE delta (nats)", "ce_delta", NULL, F_F},
    {"CE delta, no outlier filtering (nats; the SAE spliced at outliers too)", "ce_delta_unfiltered", NULL, F_F},
    {"CE recovered", "ce_recovered", NULL, F_F}, {"KL spliced (nats)", "kl_spliced", NULL, F_F},
    {"KL ablated (nats)", "kl_ablated", NULL, F_F}, {"R² pooled", "r2_pooled", NULL, F_F},
    {"R² pooled, no outlier filtering", "r2_pooled_unfiltered", NULL, F_F},
    {"explained variance", "explained_variance", NULL, F_F},
    {"explained variance, no outlier filtering", "explained_variance_unfiltered", NULL, F_F}, {"MSE", "mse", NULL, F_F},
    {"cos(x, x̂)", "cos_recon", NULL, F_F}, {"‖x̂‖/‖x‖", "l2_ratio", NULL, F_F},
    {"dead features (%)", "dead_fraction", NULL, F_PCT}, {"dead features", "dead_count", NULL, F_I},
    {"outliers", "outliers", NULL, F_I}, {"outlier fraction (%)", "outlier_fraction", NULL, F_PCT},
};
static const struct row STUDY_ROWS[] = {
    {"similarity: global mean cos", "similarity", "cos_mean", F_F},
    {"similarity: global mean L2", "similarity", "l2_mean", F_F},
    {"density Pearson r", "transfer", "density_pearson", F_F},
    {"density Pearson r, live features (not dead in either)", "live", "r", F_F},
    {"live features (log10 density > -9 in both)", "live", "n", F_I},
    {"exclusively dead in base", "transfer", "dead_only_base", F_I},
    {"exclusively dead in finetune", "transfer", "dead_only_finetune", F_I},
    {"activation error, dead in base (mean)", "activation_error_dead_base", "mean", F_F},
    {"max finetune activation, dead in base", "activation_error_dead_base", "max_finetune_act", F_F},
    {"activation error, dead in finetune (mean)", "activation_error_dead_finetune", "mean", F_F},
    {"regular features", "transfer", "regular_count", F_I},
    {"activation similarity (mean)", "activation_similarity", "mean", F_F},
    {"activation similarity > 0.8 (%)", "activation_similarity", "frac_above_0.8", F_PCT},
    {"logit similarity (mean)", "logit_similarity", "mean", F_F},
    {"unembedding Frobenius ratio", "transfer", "unembed_frobenius_ratio", F_F},
    {"unembedding Frobenius error", "transfer", "unembed_frobenius_error", F_F},
    {"weight deviation, mean over tensors", "weight_deviation", "mean", F_F},
    {"weight deviation, max over tensors", "weight_deviation", "max", F_F},
};

/* A row of figures without outlier filtering is shown only where a study has them (an outlier
 * rule was applied); every other row always. */
static bool model_row_shown(const struct study *st, int ns, const struct row *rw)
{
    if (!strstr(rw->key, "_unfiltered")) return true;
    for (int i = 0; i < ns; i++)
        for (int m = 0; m < st[i].n_models; m++)
            if (!isnan(num_or_nan(st[i].blk[m], rw->key))) return true;
    return false;
}

static const char *fmt_val(char *b, double v, enum fmt f) { return f == F_I ? fmt_i(b, v) : f == F_PCT ? fmt_pct(b, v) : fmt_f(b, v); }

static double study_val(const struct study *st, const struct row *rw)
{
    if (strcmp(rw->key, "live") == 0) {   /* computed here from the log_density arrays */
        double m, r = live_r(st, &m);
        return rw->sub[0] == 'r' ? r : st->n_models == 2 ? m : NAN;
    }
    const cJSON *o = proto_json_get(st->doc, rw->key);
    if (!o) o = proto_json_get(proto_json_get(st->doc, "transfer"), rw->key);
    return num_or_nan(o, rw->sub);
}

/* The studies' "warnings" (sf-reduce, proto/PROTOCOL.md §5) at the top; nothing when none. numbered:
 * each is said as "study N (PATH)", else as "PATH" (a sweep's parts). */
static void warnings_section(struct report *r, const struct study *st, int ns, bool numbered)
{
    struct sb *s = &r->html;
    int n = 0;
    for (int i = 0; i < ns; i++) n += cJSON_GetArraySize(proto_json_get(st[i].doc, "warnings"));
    if (n == 0) return;
    sb_printf(s, "<section id=\"warnings\"><h2>Warnings</h2>\n<ul class=\"warnings\">\n");
    for (int i = 0; i < ns; i++) {
        const cJSON *w;
        cJSON_ArrayForEach(w, proto_json_get(st[i].doc, "warnings")) {
            const char *code = str_or_null(w, "code"), *msg = str_or_null(w, "message");
            sb_printf(s, "<li class=\"warn\" data-code=\""); sb_esc(s, code ? code : "unknown");
            if (numbered) { sb_printf(s, "\">study %d (", i + 1); sb_esc(s, st[i].path); sb_printf(s, "): <b>"); }
            else { sb_printf(s, "\">"); sb_esc(s, st[i].path); sb_printf(s, ": <b>"); }
            sb_esc(s, code ? code : "unknown"); sb_printf(s, "</b>: "); sb_esc(s, msg ? msg : "(no message)");
            sb_printf(s, "</li>\n");
        }
    }
    sb_printf(s, "</ul></section>\n");
}

/* The verdict thresholds in words (under every verdict list). */
static void thresholds_note(struct sb *s)
{
    sb_printf(s, "<p class=\"thresholds\">Thresholds: <i>transfers</i> when finetune CE delta &#8804; %.1f&#215; base CE delta, "
              "regular-feature activation similarity mean &#8805; %.1f and density Pearson r &#8805; %.1f; <i>does not transfer</i> "
              "when CE delta ratio &gt; %.0f, activation similarity &lt; %.1f or finetune R&#178; pooled &lt; %.0f; otherwise "
              "<i>transfers partly</i>; <i>undetermined</i> when a figure is missing, when either model has over %.0f%% outliers "
              "(the seed's method assumes under 1%%), with what the feature figures alone say; a base CE delta under %.2f nats is floored at it for the "
              "ratio, a negative finetune CE delta counts as 0.</p>\n",
              V_CE_RATIO_OK, V_ACTSIM_OK, V_PEARSON_OK, V_CE_RATIO_BAD, V_ACTSIM_BAD, V_R2_BAD, 100 * V_OUTLIER_MAX, V_CE_FLOOR);
}

static void summary(struct report *r, struct study *st, int ns)
{
    struct sb *s = &r->html;
    char b[64];
    sb_printf(s, "<h2>Summary</h2>\n<table id=\"summary\">\n<tr><th>metric</th>");
    for (int i = 0; i < ns; i++)
        for (int m = 0; m < st[i].n_models; m++) {
            sb_printf(s, "<th>study %d: %s<br/><small>", i + 1, st[i].names[m]);
            sb_esc(s, st[i].path); sb_printf(s, "</small></th>");
        }
    sb_printf(s, "</tr>\n");
    for (size_t k = 0; k < sizeof MODEL_ROWS / sizeof *MODEL_ROWS; k++) {
        if (!model_row_shown(st, ns, &MODEL_ROWS[k])) continue;
        sb_printf(s, "<tr><td>%s</td>", MODEL_ROWS[k].label);
        for (int i = 0; i < ns; i++)
            for (int m = 0; m < st[i].n_models; m++)
                sb_printf(s, "<td>%s</td>", fmt_val(b, num_or_nan(st[i].blk[m], MODEL_ROWS[k].key), MODEL_ROWS[k].f));
        sb_printf(s, "</tr>\n");
    }
    for (size_t k = 0; k < sizeof STUDY_ROWS / sizeof *STUDY_ROWS; k++) {
        sb_printf(s, "<tr class=\"study\"><td>%s</td>", STUDY_ROWS[k].label);
        for (int i = 0; i < ns; i++)
            sb_printf(s, "<td colspan=\"%d\">%s</td>", st[i].n_models, fmt_val(b, study_val(&st[i], &STUDY_ROWS[k]), STUDY_ROWS[k].f));
        sb_printf(s, "</tr>\n");
    }
    sb_printf(s, "</table>\n<h2>Verdict</h2>\n<ul class=\"verdicts\">\n");
    for (int i = 0; i < ns; i++) {
        char v[512];
        const char *cls = verdict(&st[i], v, sizeof v);
        sb_printf(s, "<li class=\"%s\" id=\"verdict-%d\">study %d (", cls, i + 1, i + 1);
        sb_esc(s, st[i].path); sb_printf(s, "): <b>"); sb_esc(s, v); sb_printf(s, "</b></li>\n");
    }
    sb_printf(s, "</ul>\n");
    thresholds_note(s);
}

/* True when a HIST has geometric (LOGZ) edges spanning > 2 decades: drawn on a log x axis. */
static bool log_edges(const cJSON *h)
{
    double *e;
    size_t ne = num_array(proto_json_get(h, "edges"), &e);
    bool lg = ne > 3 && e[1] > 0 && e[ne - 1] / e[1] > 100 &&
              fabs((e[ne - 1] - e[ne - 2]) - (e[2] - e[1])) > 1e-6 * e[ne - 1];
    free(e);
    return lg;
}

/* ======================== sections ======================== */
static void similarity_section(struct report *r, const struct study *st, int si)
{
    const cJSON *sim = proto_json_get(st->doc, "similarity");
    char id[96], n1[48];
    sb_printf(&r->html, "<h3>Activation similarity (base vs finetune, same tokens)</h3>\n");
    if (!sim) { note(r, "No \"similarity\" block in %s: similarity plots skipped.", st->path); return; }
    sb_printf(&r->html, "<div class=\"grid\">\n");
    char ex[96];
    snprintf(ex, sizeof ex, "global mean %s", fmt_f(n1, num_or_nan(sim, "cos_mean")));
    snprintf(id, sizeof id, "plot-%d-sim-cos-hist", si);   /* zoomed to the data; the full -1..1 one folded under it */
    if (!hist_plot(r, id, proto_json_get(sim, "cos_hist"), "Cosine similarity (tokens), zoomed to the data", "cosine similarity",
                   false, true, NAN, NULL, ex))
        note(r, "cos_hist missing in %s.", st->path);
    else {
        sb_printf(&r->html, "<details class=\"full\"><summary>Cosine histogram over the full range -1..1</summary>\n");
        snprintf(id, sizeof id, "plot-%d-sim-cos-hist-full", si);
        hist_plot(r, id, proto_json_get(sim, "cos_hist"), "Cosine similarity (tokens), full range -1..1", "cosine similarity", false, false, NAN, NULL, ex);
        sb_printf(&r->html, "</details>\n");
    }
    snprintf(ex, sizeof ex, "global mean %s", fmt_f(n1, num_or_nan(sim, "l2_mean")));
    snprintf(id, sizeof id, "plot-%d-sim-l2-hist", si);
    const cJSON *h = proto_json_get(sim, "l2_hist");
    bool lg = log_edges(h);
    if (!hist_plot(r, id, h, "Euclidean distance histogram (tokens)", lg ? "L2 distance (log scale)" : "L2 distance", lg, true, NAN, NULL, ex))
        note(r, "l2_hist missing in %s.", st->path);
    snprintf(id, sizeof id, "plot-%d-sim-cos-pos", si);
    if (!line_plot(r, id, proto_json_get(sim, "cos_by_position"), "Cosine similarity by context position", "position in context", "mean cosine similarity"))
        note(r, "cos_by_position missing in %s.", st->path);
    snprintf(id, sizeof id, "plot-%d-sim-l2-pos", si);
    if (!line_plot(r, id, proto_json_get(sim, "l2_by_position"), "Euclidean distance by context position", "position in context", "mean L2 distance"))
        note(r, "l2_by_position missing in %s.", st->path);
    snprintf(id, sizeof id, "plot-%d-sim-cos-row", si);
    if (!values_plot(r, id, proto_json_get(sim, "cos_by_row"), NAN, NAN, "Per-row mean cosine similarity", "row mean cosine similarity", NULL, "rows"))
        note(r, "cos_by_row missing in %s.", st->path);
    snprintf(id, sizeof id, "plot-%d-sim-l2-row", si);
    if (!values_plot(r, id, proto_json_get(sim, "l2_by_row"), NAN, NAN, "Per-row mean Euclidean distance", "row mean L2 distance", NULL, "rows"))
        note(r, "l2_by_row missing in %s.", st->path);
    sb_printf(&r->html, "</div>\n");
}

/* Base and finetune on shared axes: the log10 activation, log10 density and activation norm
 * histograms, one plot each with both models (the per-model panels follow, folded). */
static void overlay_section(struct report *r, const struct study *st, int si)
{
    const char *const *nm = st->names;
    const cJSON *h[2];
    char id[96], e0[2][128], n1[48], n2[48];
    const char *ex[2] = {e0[0], e0[1]};
    const double none[2] = {NAN, NAN};
    sb_printf(&r->html, "<h3>Base vs finetune on shared axes</h3>\n<div class=\"grid\">\n");
    for (int m = 0; m < 2; m++) {
        h[m] = proto_json_get(st->blk[m], "act_log10_hist");
        snprintf(e0[m], sizeof e0[m], "%s zeros", fmt_i(n1, num_or_nan(h[m], "zeros")));
    }
    snprintf(id, sizeof id, "plot-%d-overlay-act-hist", si);
    if (!overlay_hist(r, id, h, nm, "log10 feature activation: base vs finetune", "log10 feature activation (non-zero)", false, true, none, ex))
        note(r, "act_log10_hist missing in a model of %s: no activation overlay.", st->path);
    for (int m = 0; m < 2; m++) {
        h[m] = proto_json_get(st->blk[m], "density_hist");
        snprintf(e0[m], sizeof e0[m], "%s dead (%s)", fmt_i(n1, num_or_nan(st->blk[m], "dead_count")), fmt_pct(n2, num_or_nan(st->blk[m], "dead_fraction")));
    }
    snprintf(id, sizeof id, "plot-%d-overlay-density-hist", si);
    if (!overlay_hist(r, id, h, nm, "log10 feature density: base vs finetune", "log10 feature density", false, true, none, ex))
        note(r, "density_hist missing in a model of %s: no density overlay.", st->path);
    double th[2];
    for (int m = 0; m < 2; m++) {
        h[m] = proto_json_get(st->blk[m], "norm_hist");
        th[m] = num_or_nan(st->blk[m], "outlier_threshold");
        snprintf(e0[m], sizeof e0[m], "%s outliers over %.1f (dashed)", fmt_pct(n1, num_or_nan(st->blk[m], "outlier_fraction")), th[m]);
    }
    bool lg = log_edges(h[0]) || log_edges(h[1]);
    snprintf(id, sizeof id, "plot-%d-overlay-norm-hist", si);
    if (!overlay_hist(r, id, h, nm, "Activation norm: base vs finetune", lg ? "activation norm ||x|| (log scale)" : "activation norm ||x||",
                      lg, true, th, ex))
        note(r, "norm_hist missing in a model of %s: no norm overlay.", st->path);
    sb_printf(&r->html, "</div>\n");
}

static void model_section(struct report *r, const struct study *st, int si, int m)
{
    const cJSON *b = st->blk[m];
    const char *nm = st->names[m];
    char id[96], t[160], ex[160], n1[48], n2[48];
    sb_printf(&r->html, "<h3>Model: %s</h3>\n<div class=\"grid\">\n", nm);
    snprintf(id, sizeof id, "plot-%d-%s-act-hist", si, nm);
    snprintf(t, sizeof t, "%s: log10 feature activation histogram", nm);
    double z = num_or_nan(proto_json_get(b, "act_log10_hist"), "zeros");
    if (isfinite(z)) snprintf(ex, sizeof ex, "zero activations: %.0f (not drawn)", z);
    else snprintf(ex, sizeof ex, "zero activations: not reported");
    if (!hist_plot(r, id, proto_json_get(b, "act_log10_hist"), t, "log10 feature activation (non-zero)", false, true, NAN, NULL, ex))
        note(r, "%s: no act_log10_hist in %s (needs feats).", nm, st->path);
    snprintf(id, sizeof id, "plot-%d-%s-density-hist", si, nm);
    snprintf(t, sizeof t, "%s: log10 feature density histogram", nm);
    snprintf(ex, sizeof ex, "dead features (log10 density <= -9): %s (%s)", fmt_i(n1, num_or_nan(b, "dead_count")),
             fmt_pct(n2, num_or_nan(b, "dead_fraction")));
    if (!hist_plot(r, id, proto_json_get(b, "density_hist"), t, "log10 feature density", false, false, NAN, NULL, ex))
        note(r, "%s: no density_hist in %s (needs feats).", nm, st->path);
    snprintf(id, sizeof id, "plot-%d-%s-norm-hist", si, nm);
    snprintf(t, sizeof t, "%s: activation norm histogram", nm);
    double th = num_or_nan(b, "outlier_threshold");
    char vl[96];
    snprintf(vl, sizeof vl, "outlier threshold %.1f", th);
    snprintf(ex, sizeof ex, "outliers: %s (%s)", fmt_i(n1, num_or_nan(b, "outliers")), fmt_pct(n2, num_or_nan(b, "outlier_fraction")));
    const cJSON *h = proto_json_get(b, "norm_hist");
    bool lg = log_edges(h);
    if (!hist_plot(r, id, h, t, lg ? "activation norm ||x|| (log scale)" : "activation norm ||x||", lg, true, th,
                   isfinite(th) ? vl : NULL, ex))
        note(r, "%s: no norm_hist in %s (needs acts).", nm, st->path);
    if (!isfinite(th) && h) note(r, "%s: no outlier_threshold in %s: no threshold line.", nm, st->path);
    sb_printf(&r->html, "</div>\n");
}

static void transfer_section(struct report *r, const struct study *st, int si)
{
    const cJSON *tr = proto_json_get(st->doc, "transfer");
    char id[96], ex[128], n1[48], n2[48];
    sb_printf(&r->html, "<h3>Feature transfer</h3>\n");
    if (st->n_models == 2) {
        double *lb, *lf;
        size_t nb = num_array(proto_json_get(st->blk[0], "log_density"), &lb), nf = num_array(proto_json_get(st->blk[1], "log_density"), &lf);
        sb_printf(&r->html, "<div class=\"grid\">\n");
        snprintf(id, sizeof id, "plot-%d-transfer-density-scatter", si);
        if (lb && lf && nb == nf && nb > 1) {
            density_scatter(r, id, lb, lf, nb, num_or_nan(tr, "density_pearson"));
            snprintf(id, sizeof id, "plot-%d-transfer-density-parallel", si);
            density_parallel(r, id, lb, lf, nb);
        } else note(r, "log_density missing (or of different lengths) in %s: density scatter and parallel coordinates skipped.", st->path);
        sb_printf(&r->html, "</div>\n");
        free(lb); free(lf);
    }
    if (!tr) { note(r, "No \"transfer\" block in %s: transfer histograms skipped.", st->path); return; }
    sb_printf(&r->html, "<div class=\"grid\">\n");
    const cJSON *o = proto_json_get(tr, "activation_error_dead_base");
    snprintf(id, sizeof id, "plot-%d-transfer-err-dead-base", si);
    snprintf(ex, sizeof ex, "mean %s, max finetune activation %s", fmt_f(n1, num_or_nan(o, "mean")), fmt_g(n2, num_or_nan(o, "max_finetune_act")));
    if (!values_plot(r, id, proto_json_get(o, "values"), 0, NAN, "Activation error: features dead only in base", "mean |log10 a_base - log10 a_finetune|", ex, "features"))
        note(r, "activation_error_dead_base values missing in %s.", st->path);
    o = proto_json_get(tr, "activation_error_dead_finetune");
    snprintf(id, sizeof id, "plot-%d-transfer-err-dead-finetune", si);
    snprintf(ex, sizeof ex, "mean %s", fmt_f(n1, num_or_nan(o, "mean")));
    if (!values_plot(r, id, proto_json_get(o, "values"), 0, NAN, "Activation error: features dead only in finetune", "mean |log10 a_base - log10 a_finetune|", ex, "features"))
        note(r, "activation_error_dead_finetune values missing in %s.", st->path);
    o = proto_json_get(tr, "activation_similarity");
    snprintf(id, sizeof id, "plot-%d-transfer-act-sim", si);
    snprintf(ex, sizeof ex, "mean %s, %s above 0.8", fmt_f(n1, num_or_nan(o, "mean")), fmt_pct(n2, num_or_nan(o, "frac_above_0.8")));
    if (!values_plot(r, id, proto_json_get(o, "values"), -1, 1, "Activation similarity: regular features", "Pearson r of activations (base vs finetune)", ex, "features"))
        note(r, "activation_similarity values missing in %s.", st->path);
    o = proto_json_get(tr, "logit_similarity");
    snprintf(id, sizeof id, "plot-%d-transfer-logit-sim", si);
    snprintf(ex, sizeof ex, "mean %s", fmt_f(n1, num_or_nan(o, "mean")));
    if (!values_plot(r, id, proto_json_get(o, "values"), NAN, 1, "Logit weight similarity: regular features", "Pearson r of logit weights (base vs finetune)", ex, "features"))
        note(r, "logit_similarity values missing in %s (needs --base-model/--finetune-model/--sae in sf-reduce).", st->path);
    sb_printf(&r->html, "</div>\n");
}

/* ---- weight deviation (sf-reduce weight_deviation: by_layer, by_kind) ---- */
/* ‖A − B‖/‖A‖ by layer index: two lines with dots, the mean and the max over the layer's tensors. */
static bool wdev_layer_plot(struct report *r, const char *id, const cJSON *bl)
{
    int n = cJSON_GetArraySize(bl);
    if (n < 1) return false;
    double l0 = INFINITY, l1 = -INFINITY, ymax = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, bl) {
        double l = num_or_nan(e, "layer"), m = num_or_nan(e, "max");
        if (isfinite(l)) { l0 = fmin(l0, l); l1 = fmax(l1, l); }
        if (isfinite(m)) ymax = fmax(ymax, m);
    }
    if (!isfinite(l0)) return false;
    size_t at = fig_begin(r);
    struct plot p;
    plot_begin(&p, &r->html, id, "Weight deviation by layer", "layer", "||A - B|| / ||A||", l0 - 0.5, l1 + 0.5, false,
               0, ymax > 0 ? ymax * 1.3 : 1, false);
    static const char *const key[2] = {"mean", "max"}, *const col[2] = {"#4c78a8", "#e45756"};
    csv_row(r, "layer,mean,max");
    cJSON_ArrayForEach(e, bl) csv_row(r, "%.10g,%.10g,%.10g", num_or_nan(e, "layer"), num_or_nan(e, "mean"), num_or_nan(e, "max"));
    for (int k = 0; k < 2; k++) {
        sb_printf(&r->html, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col[k]);
        cJSON_ArrayForEach(e, bl) {
            double l = num_or_nan(e, "layer"), v = num_or_nan(e, key[k]);
            if (isfinite(l) && isfinite(v)) sb_printf(&r->html, "%.1f,%.1f ", px(&p, l), py(&p, v));
        }
        sb_printf(&r->html, "\"/>\n");
        cJSON_ArrayForEach(e, bl) {
            double l = num_or_nan(e, "layer"), v = num_or_nan(e, key[k]);
            if (isfinite(l) && isfinite(v))
                sb_printf(&r->html, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>layer %.0f %s %.4g</title></circle>\n",
                          px(&p, l), py(&p, v), col[k], l, key[k], v);
        }
    }
    plot_note(&p, 0, col[1], "max over the layer's tensors");
    plot_note(&p, 1, col[0], "mean over the layer's tensors");
    plot_end(&p);
    fig_end(r, id, at, "Relative Frobenius deviation of each layer's tensors (model.layers.L.*), mean and max");
    return true;
}

/* The mean deviation of each tensor kind as horizontal bars (kind names on the left, the value at
 * the end), the kind's max as a black mark. */
static bool wdev_kind_plot(struct report *r, const char *id, const cJSON *bk)
{
    enum { LX = 170, RX = 60, BH = 18, TOP = 34 };
    int n = cJSON_GetArraySize(bk);
    if (n < 1) return false;
    double xmax = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, bk) { double m = num_or_nan(e, "max"); if (isfinite(m)) xmax = fmax(xmax, m); }
    if (!(xmax > 0)) xmax = 1;
    const int h = TOP + BH * n + 30, w = PW - LX - RX;
    struct sb *s = &r->html;
    size_t at = fig_begin(r);
    svg_open(s, id, "Weight deviation by tensor kind", h);
    int i = 0;
    csv_row(r, "kind,mean,max");
    cJSON_ArrayForEach(e, bk) {
        double m = num_or_nan(e, "mean"), mx = num_or_nan(e, "max"), y = TOP + BH * i++;
        csv_row(r, "%s,%.10g,%.10g", e->string, m, mx);
        sb_printf(s, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", LX - 6, y + 12);
        sb_esc(s, e->string); sb_printf(s, "</text>\n");
        if (isfinite(m))
            sb_printf(s, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"#4c78a8\"><title>mean %.4g</title></rect>"
                      "<text x=\"%.1f\" y=\"%.1f\" fill=\"#333\">%.3g</text>\n", LX, y + 2, fmax(w * m / xmax, 0.6), BH - 4, m,
                      LX + w * fmax(m, isfinite(mx) ? mx : m) / xmax + 4, y + 12, m);
        if (isfinite(mx))
            sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" stroke-width=\"2\"><title>max %.4g</title></line>\n",
                      LX + w * mx / xmax, y + 1, LX + w * mx / xmax, y + BH - 1, mx);
    }
    sb_printf(s, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", LX, TOP - 2, LX, TOP + BH * n);
    sb_printf(s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">mean ||A - B|| / ||A|| (bar), max (black mark)</text>\n",
              LX + w / 2, h - 10);
    sb_printf(s, "</svg>\n");
    fig_end(r, id, at, "Relative Frobenius deviation by tensor kind: mean over the kind's tensors (bars), max (marks)");
    return true;
}

/* The weight deviation of the two checkpoints (sf-reduce computes it before any token). */
static void weights_section(struct report *r, const struct study *st, int si)
{
    const cJSON *wd = proto_json_get(st->doc, "weight_deviation");
    char id[96], n1[48], n2[48];
    sb_printf(&r->html, "<h3>Weight deviation (base vs finetune checkpoints)</h3>\n");
    if (!wd) { note(r, "No \"weight_deviation\" in %s (needs --base-model/--finetune-model in sf-reduce).", st->path); return; }
    const char *mt = str_or_null(wd, "max_tensor");
    note(r, "Relative Frobenius deviation ||A - B||/||A|| per tensor: mean %s, max %s (%s).", fmt_f(n1, num_or_nan(wd, "mean")),
         fmt_f(n2, num_or_nan(wd, "max")), mt ? mt : "?");
    sb_printf(&r->html, "<div class=\"grid\">\n");
    snprintf(id, sizeof id, "plot-%d-weights-layer", si);
    if (!wdev_layer_plot(r, id, proto_json_get(wd, "by_layer")))
        note(r, "weight_deviation.by_layer missing in %s (an older sf-reduce).", st->path);
    snprintf(id, sizeof id, "plot-%d-weights-kind", si);
    if (!wdev_kind_plot(r, id, proto_json_get(wd, "by_kind")))
        note(r, "weight_deviation.by_kind missing in %s (an older sf-reduce).", st->path);
    sb_printf(&r->html, "</div>\n");
}

/* Per-model metrics side by side (one study). */
static void metrics_table(struct report *r, const struct study *st, int si)
{
    struct sb *s = &r->html;
    char b[64];
    sb_printf(s, "<h3>Per-model metrics</h3>\n<table id=\"metrics-%d\"><tr><th>metric</th>", si);
    for (int m = 0; m < st->n_models; m++) sb_printf(s, "<th>%s</th>", st->names[m]);
    sb_printf(s, "</tr>\n");
    for (size_t k = 0; k < sizeof MODEL_ROWS / sizeof *MODEL_ROWS; k++) {
        if (!model_row_shown(st, 1, &MODEL_ROWS[k])) continue;
        sb_printf(s, "<tr><td>%s</td>", MODEL_ROWS[k].label);
        for (int m = 0; m < st->n_models; m++) sb_printf(s, "<td>%s</td>", fmt_val(b, num_or_nan(st->blk[m], MODEL_ROWS[k].key), MODEL_ROWS[k].f));
        sb_printf(s, "</tr>\n");
    }
    sb_printf(s, "</table>\n");
}

/* ---- features: the per-feature drill-down (sf-reduce's "features" block) ---- */
/* The display text of token id (features.pieces), else "#id". */
static const char *piece_of(const cJSON *pieces, double id, char *b, size_t n)
{
    char k[32];
    snprintf(k, sizeof k, "%.0f", id);
    const char *p = str_or_null(pieces, k);
    if (p) return p;
    snprintf(b, n, "#%.0f", id);
    return b;
}

/* One token of a context: shaded by act/amax, its activation in the title and, when it fired,
 * as a subscript; the max token (at) outlined. Newlines shown as the return sign. */
static void token_span(struct sb *s, const char *txt, double act, double amax, bool at)
{
    double a = amax > 0 && act > 0 ? fmin(1.0, act / amax) : 0;
    sb_printf(s, "<span class=\"tk%s\" style=\"background:rgba(255,140,0,%.2f)\" title=\"activation %.4g\">", at ? " at" : "", a, act);
    for (const char *c = txt; *c; c++) {
        if (*c == '\n') sb_printf(s, "\xe2\x8f\x8e");
        else { char one[2] = {*c, 0}; sb_esc(s, one); }
    }
    if (act > 0) sb_printf(s, "<sub>%.2f</sub>", act);
    sb_printf(s, "</span>");
}

/* The contexts [{row, pos, value, tokens, acts, at}] of one model as a list. */
static void contexts_html(struct sb *s, const cJSON *ctxs, const cJSON *pieces, double amax)
{
    const cJSON *c;
    if (!cJSON_GetArraySize(ctxs)) { sb_printf(s, "<p class=\"fnone\">no activation kept (never fired, or no --top-k)</p>\n"); return; }
    sb_printf(s, "<ol class=\"ctx\">\n");
    cJSON_ArrayForEach(c, ctxs) {
        double *tk, *ac, at = num_or_nan(c, "at");
        size_t n = num_array(proto_json_get(c, "tokens"), &tk), na = num_array(proto_json_get(c, "acts"), &ac);
        char b[48];
        sb_printf(s, "<li><span class=\"cpos\">row %.0f, pos %.0f: %.3f</span> ", num_or_nan(c, "row"), num_or_nan(c, "pos"), num_or_nan(c, "value"));
        for (size_t i = 0; i < n; i++) token_span(s, piece_of(pieces, tk[i], b, sizeof b), i < na ? ac[i] : NAN, amax, (double)i == at);
        sb_printf(s, "</li>\n");
        free(tk); free(ac);
    }
    sb_printf(s, "</ol>\n");
}

/* "top"/"bottom" logit tokens {ids, values} as one line */
static void logits_html(struct sb *s, const cJSON *lg, const cJSON *pieces, const char *label)
{
    double *id, *v;
    size_t n = num_array(proto_json_get(lg, "ids"), &id), nv = num_array(proto_json_get(lg, "values"), &v);
    char b[48];
    sb_printf(s, "<p class=\"logits\"><b>%s:</b> ", label);
    for (size_t i = 0; i < n; i++) {
        sb_printf(s, "<span class=\"lt\"><span class=\"tk\">");
        sb_esc(s, piece_of(pieces, id[i], b, sizeof b));
        sb_printf(s, "</span> %+.3f</span> ", i < nv ? v[i] : NAN);
    }
    if (!n) sb_printf(s, "\xe2\x80\x94 (no --base-model/--finetune-model/--sae)");
    sb_printf(s, "</p>\n");
    free(id); free(v);
}

static const char *role_label(const char *r)
{
    return strcmp(r, "best") == 0 ? "best transfer" : strcmp(r, "worst") == 0 ? "worst transfer"
         : strcmp(r, "dead_only_base") == 0 ? "dead in base only" : strcmp(r, "dead_only_finetune") == 0 ? "dead in finetune only"
         : strcmp(r, "asked") == 0 ? "asked (--features)" : r;
}

/* One card: id and roles, the figures side by side, each model's contexts and logit tokens. */
static void feature_card(struct sb *s, const cJSON *cd, const cJSON *pieces, int si, const char *const *names, int nm)
{
    char b1[48], b2[48];
    double id = num_or_nan(cd, "id");
    const cJSON *r;
    sb_printf(s, "<article class=\"fcard\" id=\"feature-card-%d-%.0f\" aria-labelledby=\"feature-card-%d-%.0f-h\">\n"
              "<h4 id=\"feature-card-%d-%.0f-h\">Feature %.0f", si, id, si, id, si, id, id);
    cJSON_ArrayForEach(r, proto_json_get(cd, "roles")) if (cJSON_IsString(r)) sb_printf(s, " <span class=\"role\">%s</span>", role_label(r->valuestring));
    sb_printf(s, "</h4>\n<table class=\"fstats\"><tr><th>figure</th>");
    for (int m = 0; m < nm; m++) sb_printf(s, "<th>%s</th>", names[m]);
    sb_printf(s, "</tr>\n<tr><td>log10 density</td>");
    for (int m = 0; m < nm; m++) sb_printf(s, "<td>%s</td>", fmt_f(b1, num_or_nan(proto_json_get(cd, names[m]), "log_density")));
    sb_printf(s, "</tr>\n<tr><td>max activation</td>");
    for (int m = 0; m < nm; m++) sb_printf(s, "<td>%s</td>", fmt_f(b1, num_or_nan(proto_json_get(cd, names[m]), "max_act")));
    sb_printf(s, "</tr>\n");
    if (nm == 2)
        sb_printf(s, "<tr><td>activation similarity</td><td colspan=\"2\">%s</td></tr>\n<tr><td>logit similarity</td><td colspan=\"2\">%s</td></tr>\n",
                  fmt_f(b1, num_or_nan(cd, "activation_similarity")), fmt_f(b2, num_or_nan(cd, "logit_similarity")));
    sb_printf(s, "</table>\n<div class=\"fcols\">\n");
    for (int m = 0; m < nm; m++) {
        const cJSON *mb = proto_json_get(cd, names[m]);
        sb_printf(s, "<div class=\"fcol\"><h5>%s: top activating contexts</h5>\n", names[m]);
        contexts_html(s, proto_json_get(mb, "contexts"), pieces, num_or_nan(mb, "max_act"));
        logits_html(s, proto_json_get(mb, "top_logits"), pieces, "top logit tokens");
        logits_html(s, proto_json_get(mb, "bottom_logits"), pieces, "bottom logit tokens");
        sb_printf(s, "</div>\n");
    }
    sb_printf(s, "</div></article>\n");
}

/* The features section: an index table of the carded features, then one card each. */
static void features_section(struct report *r, const struct study *st, int si)
{
    static const char *const pair[2] = {"base", "finetune"}, *const one[1] = {"model"};
    struct sb *s = &r->html;
    const cJSON *fb = proto_json_get(st->doc, "features"), *cards = proto_json_get(fb, "cards"), *cd;
    const cJSON *pieces = proto_json_get(fb, "pieces");
    const char *const *names = st->n_models == 2 ? pair : one;
    char b1[48], b2[48], b3[48];
    sb_printf(s, "<section id=\"features-%d\"><h3>Features: drill-down</h3>\n", si);
    if (!cJSON_GetArraySize(cards)) {
        note(r, "No \"features\" cards in %s (sf-reduce --feature-cards/--features; needs feats).", st->path);
        sb_printf(s, "</section>\n");
        return;
    }
    sb_printf(s, "<p class=\"thresholds\">Top %.0f activating contexts per model (%.0f tokens each side, clipped to the row; "
              "shade = activation / the feature's max in that model, subscript = activation); tokens %s.</p>\n",
              num_or_nan(fb, "top_k"), num_or_nan(fb, "context"), pieces ? "decoded with the base tokenizer" : "shown as ids (no tokenizer)");
    sb_printf(s, "<table class=\"sortable\" id=\"features-table-%d\"><tr><th>feature</th><th>shown as</th><th>act. sim.</th><th>logit sim.</th>"
              "<th>log10 dens. %s</th>%s</tr>\n", si, names[0], st->n_models == 2 ? "<th>log10 dens. finetune</th>" : "");
    cJSON_ArrayForEach(cd, cards) {
        double id = num_or_nan(cd, "id");
        const cJSON *ro;
        sb_printf(s, "<tr><td><a href=\"#feature-card-%d-%.0f\">%.0f</a></td><td>", si, id, id);
        cJSON_ArrayForEach(ro, proto_json_get(cd, "roles")) if (cJSON_IsString(ro)) sb_printf(s, "%s%s", role_label(ro->valuestring), ro->next ? ", " : "");
        sb_printf(s, "</td><td>%s</td><td>%s</td><td>%s</td>", fmt_f(b1, num_or_nan(cd, "activation_similarity")),
                  fmt_f(b2, num_or_nan(cd, "logit_similarity")), fmt_f(b3, num_or_nan(proto_json_get(cd, names[0]), "log_density")));
        if (st->n_models == 2) sb_printf(s, "<td>%s</td>", fmt_f(b1, num_or_nan(proto_json_get(cd, "finetune"), "log_density")));
        sb_printf(s, "</tr>\n");
    }
    sb_printf(s, "</table>\n<div class=\"fcards\">\n");
    cJSON_ArrayForEach(cd, cards) feature_card(s, cd, pieces, si, names, st->n_models == 2 ? 2 : 1);
    sb_printf(s, "</div></section>\n");
}

/* ---- provenance ---- */
/* Appends ARGS, a string or an array of strings, as code. */
static void prov_args(struct sb *s, const cJSON *args)
{
    const cJSON *a;
    sb_printf(s, "<code>");
    if (cJSON_IsString(args)) sb_esc(s, args->valuestring);
    else cJSON_ArrayForEach(a, args) if (cJSON_IsString(a)) { sb_esc(s, a->valuestring); sb_printf(s, " "); }
    sb_printf(s, "</code>");
}

/* A header meta: every scalar key (model, hook, sae, ctx, bos, tokenizer, ...), then the stages. */
static void prov_meta(struct sb *s, const cJSON *meta)
{
    const cJSON *v, *stg;
    sb_printf(s, "<ul>");
    cJSON_ArrayForEach(v, meta) {
        if (cJSON_IsArray(v) || cJSON_IsObject(v)) continue;
        char *t = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
        sb_printf(s, "<li class=\"kv\">"); sb_esc(s, v->string); sb_printf(s, ": "); sb_esc(s, t ? t : v->valuestring); sb_printf(s, "</li>");
        free(t);
    }
    cJSON_ArrayForEach(stg, proto_json_get(meta, "stages")) {
        sb_printf(s, "<li>stage ");
        sb_esc(s, str_or_null(stg, "name")); sb_printf(s, " "); sb_esc(s, str_or_null(stg, "version")); sb_printf(s, ": ");
        prov_args(s, proto_json_get(stg, "args"));
        sb_printf(s, "</li>");
    }
    sb_printf(s, "</ul>\n");
}

/* A "throughput" block ({STAGE: {rows, seconds, tokens_per_s}}) as a table; nothing when empty. */
static void throughput_table(struct sb *s, const cJSON *th)
{
    char b[48], b2[48], b3[48];
    const cJSON *t;
    if (cJSON_GetArraySize(th) < 1) return;
    sb_printf(s, "<table class=\"throughput\"><tr><th>stage</th><th>rows</th><th>seconds</th><th>tokens/s</th></tr>\n");
    cJSON_ArrayForEach(t, th) {
        sb_printf(s, "<tr><td>"); sb_esc(s, t->string);
        sb_printf(s, "</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", fmt_i(b, num_or_nan(t, "rows")),
                  fmt_f(b2, num_or_nan(t, "seconds")), fmt_i(b3, num_or_nan(t, "tokens_per_s")));
    }
    sb_printf(s, "</table>\n");
}

/* Opens the provenance footer: its heading and the report's writer and date. */
static void footer_open(struct sb *s)
{
    char b[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm);
    sb_printf(s, "<footer id=\"provenance\"><h2>Provenance</h2>\n<p>Report written by sf-report %s on %s.</p>\n", SAEFLOW_VERSION, b);
}

static void provenance(struct report *r, const struct study *st, int ns)
{
    struct sb *s = &r->html;
    char b[64], b2[48], b3[48];
    footer_open(s);
    for (int i = 0; i < ns; i++) {
        const cJSON *d = st[i].doc, *p = proto_json_get(d, "provenance");
        sb_printf(s, "<h4>study %d: ", i + 1); sb_esc(s, st[i].path); sb_printf(s, "</h4>\n<ul>");
        sb_printf(s, "<li>saeflow "); sb_esc(s, str_or_null(d, "saeflow")); sb_printf(s, "</li>");
        sb_printf(s, "<li>tokens %s, rows %s, ctx %s</li>", fmt_i(b, num_or_nan(d, "tokens")), fmt_i(b2, num_or_nan(d, "rows")), fmt_i(b3, num_or_nan(d, "ctx")));
        sb_printf(s, "<li>hook "); sb_esc(s, str_or_null(d, "hook")); sb_printf(s, ", SAE "); sb_esc(s, str_or_null(d, "sae")); sb_printf(s, "</li></ul>\n");
        const cJSON *t;
        throughput_table(s, proto_json_get(d, "throughput"));
        cJSON_ArrayForEach(t, proto_json_get(d, "nan_counts")) {
            sb_printf(s, "<p class=\"note\">excluded as non-finite: ");
            sb_esc(s, t->string); sb_printf(s, ": %s (", fmt_i(b, num_or_nan(t, "count"))); sb_esc(s, str_or_null(t, "reason")); sb_printf(s, ")</p>\n");
        }
        if (!p) { note(r, "No provenance in %s.", st[i].path); continue; }
        const cJSON *in;
        cJSON_ArrayForEach(in, proto_json_get(p, "inputs")) {
            sb_printf(s, "<p>input "); sb_esc(s, str_or_null(in, "role")); sb_printf(s, " ("); sb_esc(s, str_or_null(in, "endpoint")); sb_printf(s, ")</p>");
            prov_meta(s, proto_json_get(in, "header"));
        }
        const cJSON *rd = proto_json_get(p, "reduce");
        if (rd) {
            sb_printf(s, "<p>sf-reduce "); sb_esc(s, str_or_null(rd, "version")); sb_printf(s, ": ");
            prov_args(s, proto_json_get(rd, "args"));
            sb_printf(s, "</p>\n");
        }
        const cJSON *ck = proto_json_get(p, "checkpoints"), *c;
        if (ck) { sb_printf(s, "<ul>"); cJSON_ArrayForEach(c, ck) if (cJSON_IsString(c)) { sb_printf(s, "<li>"); sb_esc(s, c->string); sb_printf(s, ": "); sb_esc(s, c->valuestring); sb_printf(s, "</li>"); } sb_printf(s, "</ul>\n"); }
    }
    sb_printf(s, "</footer>\n");
}

/* ======================== sweeps ======================== */
/* A sweep (pipelines/sweep.sh, proto/PROTOCOL.md §5 "Sweeps"): the similarity profile at every
 * hook, the weight deviation by layer and one transfer study per SAE, all drawn on one depth axis
 * (blocks run: 0 = the embeddings, L + 1 = block L's output, blocks.L.hook_resid_post). Every key
 * is optional: what is missing is said in words (or as a plot saying so), the rest is drawn. */
#define SWEEP_MAX   512     /* hooks, layers and studies drawn (PROTO_MAX_HOOKS); more are noted */
#define HEAT_COLS   128     /* the heatmap averages positions into at most this many columns */

struct sweep {
    const cJSON *doc, *prof, *wd;
    int nh, nl, ns;                                      /* profile hooks, weight layers, studies */
    bool cut;                                            /* more than SWEEP_MAX of one of them */
    const char *hook[SWEEP_MAX];                         /* (nh) profile hook names (NULL: unnamed) */
    const cJSON *hsim[SWEEP_MAX];                        /* (nh) the hook's "similarity" block */
    double hd[SWEEP_MAX], hcos[SWEEP_MAX], hl2[SWEEP_MAX];  /* (nh) depth, cos_mean, l2_mean */
    double ld[SWEEP_MAX], lmean[SWEEP_MAX], lmax[SWEEP_MAX];  /* (nl) depth L + 1, deviation mean, max */
    double l1c[SWEEP_MAX], ldiv[SWEEP_MAX];              /* (nl) 1 - cos after block L; its rise over block L */
    char ltip[SWEEP_MAX][24];                            /* (nl) "layer L" */
    struct study st[SWEEP_MAX];                          /* (ns) each study's result (doc NULL: none) */
    const cJSON *sent[SWEEP_MAX];                        /* (ns) the "studies" entry */
    double sd[SWEEP_MAX];                                /* (ns) depth */
    char spath[SWEEP_MAX][96];                           /* (ns) "SAE at HOOK" */
};

/* Depth of a hook (proto/hook.h), NaN when NAME is not a blocks.L.hook_resid_pre/post name. */
static double hook_depth(const char *name)
{
    struct proto_hook h;
    return name && proto_hook_parse(name, &h) ? proto_hook_depth(h) : NAN;
}

/* 1 - cos_mean at the profile's blocks.L.hook_resid_post (post) or at its first hook of depth L. */
static double sweep_div(const struct sweep *w, int layer, bool post)
{
    char name[PROTO_HOOK_NAME];
    snprintf(name, sizeof name, "blocks.%d.hook_resid_post", layer);
    for (int i = 0; i < w->nh; i++)
        if (post ? w->hook[i] && strcmp(w->hook[i], name) == 0 : w->hd[i] == layer) return 1 - w->hcos[i];
    return NAN;
}

/* Binds a study to a result document (doc NULL: none), as study_load does after reading it. */
static void study_bind(struct study *st, cJSON *doc, const char *path)
{
    memset(st, 0, sizeof *st);
    st->doc = doc; st->path = path;
    if (proto_json_get(doc, "base") || proto_json_get(doc, "finetune")) {
        st->blk[0] = proto_json_get(doc, "base"); st->blk[1] = proto_json_get(doc, "finetune");
        st->names[0] = "base"; st->names[1] = "finetune"; st->n_models = 2;
    } else {
        st->blk[0] = proto_json_get(doc, "model"); st->names[0] = "model"; st->n_models = 1;
    }
}

/* The profile hooks (names from profile.hooks[i].hook, else the top-level "hooks"). */
static void sweep_load_profile(struct sweep *w)
{
    const cJSON *e, *names = proto_json_get(w->doc, "hooks");
    cJSON_ArrayForEach(e, proto_json_get(w->prof, "hooks")) {
        if (w->nh == SWEEP_MAX) { w->cut = true; break; }
        int i = w->nh++;
        const cJSON *alt = cJSON_IsArray(names) ? cJSON_GetArrayItem(names, i) : NULL;
        w->hook[i] = str_or_null(e, "hook");
        if (!w->hook[i] && cJSON_IsString(alt)) w->hook[i] = alt->valuestring;
        w->hsim[i] = proto_json_get(e, "similarity");
        w->hd[i] = hook_depth(w->hook[i]);
        w->hcos[i] = num_or_nan(w->hsim[i], "cos_mean");
        w->hl2[i] = num_or_nan(w->hsim[i], "l2_mean");
    }
}

static void sweep_load(struct sweep *w, const cJSON *doc)
{
    memset(w, 0, sizeof *w);
    w->doc = doc; w->prof = proto_json_get(doc, "profile"); w->wd = proto_json_get(doc, "weight_deviation");
    sweep_load_profile(w);
    const cJSON *e;
    cJSON_ArrayForEach(e, proto_json_get(w->wd, "by_layer")) {
        if (w->nl == SWEEP_MAX) { w->cut = true; break; }
        int k = w->nl++;
        double l = num_or_nan(e, "layer");
        bool ok = l >= 0 && l < 100000 && l == floor(l);
        w->ld[k] = ok ? l + 1 : NAN; w->lmean[k] = num_or_nan(e, "mean"); w->lmax[k] = num_or_nan(e, "max");
        w->l1c[k] = ok ? sweep_div(w, (int)l, true) : NAN;
        w->ldiv[k] = ok ? w->l1c[k] - sweep_div(w, (int)l, false) : NAN;
        snprintf(w->ltip[k], sizeof w->ltip[k], "layer %.0f", l);
    }
    cJSON_ArrayForEach(e, proto_json_get(doc, "studies")) {
        if (w->ns == SWEEP_MAX) { w->cut = true; break; }
        int i = w->ns++;
        const cJSON *res = proto_json_get(e, "result");
        const char *hk = str_or_null(e, "hook");
        if (!hk) hk = str_or_null(res, "hook");
        double d = num_or_nan(e, "depth");
        w->sent[i] = e; w->sd[i] = isfinite(d) ? d : hook_depth(hk);
        snprintf(w->spath[i], sizeof w->spath[i], "SAE at %s", hk ? hk : "an unnamed hook");
        study_bind(&w->st[i], cJSON_IsObject(res) ? (cJSON *)res : NULL, w->spath[i]);
    }
}

/* Pearson r of the pairs (x[i], y[i]) where both are finite (two-pass); *m gets their count. NaN
 * under 3 pairs or when one side is constant. */
static double pearson(const double *x, const double *y, int n, int *m)
{
    double mx = 0, my = 0, vx = 0, vy = 0, c = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (isfinite(x[i]) && isfinite(y[i])) { mx += x[i]; my += y[i]; k++; }
    *m = k;
    if (k < 3) return NAN;
    mx /= k; my /= k;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) { vx += (x[i] - mx) * (x[i] - mx); vy += (y[i] - my) * (y[i] - my); c += (x[i] - mx) * (y[i] - my); }
    return vx > 0 && vy > 0 ? c / sqrt(vx * vy) : NAN;
}

/* The depth axis under a plot begun with no x label: a tick per depth (every k-th past 12). */
static void depth_axis(struct plot *p, double d0, double d1)
{
    char b[32];
    double st = fmax(1, ceil((d1 - d0) / 12));
    for (double t = ceil(d0), k = 0; t <= d1 + 1e-9 && k < 40; t += st, k++) { snprintf(b, sizeof b, "%.0f", t); tick(p, true, t, b); }
    sb_printf(p->s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">depth (blocks run; block L's output is L + 1)</text>\n",
              (ML + PW - MR) / 2, PH - 10);
}

/* One line of a depth plot: y (n), its legend name and colour. */
struct series { const double *y; const char *name, *color; };

/* Values by depth: x (n) depths, each series' y (n) drawn as a line with dots in the given
 * (network) order, each dot titled tips[i] (its hook or layer). Returns false when no point has
 * a finite depth and value. */
static bool depth_plot(struct report *r, const char *id, const char *title, const char *yl, const double *x, int n,
                       const struct series *sr, int nsr, const char *const *tips, const char *extra, const char *caption)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < nsr; k++)
        for (int i = 0; i < n; i++)
            if (isfinite(x[i]) && isfinite(sr[k].y[i])) {
                x0 = fmin(x0, x[i]); x1 = fmax(x1, x[i]); y0 = fmin(y0, sr[k].y[i]); y1 = fmax(y1, sr[k].y[i]);
            }
    if (!isfinite(x0)) return false;
    double pad = y1 > y0 ? 0.08 * (y1 - y0) : fmax(0.05 * fabs(y1), 0.05);
    size_t at = fig_begin(r);
    struct plot p;
    struct sb *s = &r->html;
    plot_begin(&p, s, id, title, "", yl, x0 - 0.5, x1 + 0.5, false, y0 - pad, y1 + 2.5 * pad, false);
    depth_axis(&p, x0, x1);
    csv_row(r, "series,depth,where,value");
    for (int k = 0; k < nsr; k++)
        for (int i = 0; i < n; i++)
            if (isfinite(x[i]) && isfinite(sr[k].y[i])) csv_row(r, "%s,%.10g,%s,%.10g", sr[k].name, x[i], tips && tips[i] ? tips[i] : "?", sr[k].y[i]);
    for (int k = 0; k < nsr; k++) {
        sb_printf(s, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", sr[k].color);
        for (int i = 0; i < n; i++)
            if (isfinite(x[i]) && isfinite(sr[k].y[i])) sb_printf(s, "%.1f,%.1f ", px(&p, x[i]), py(&p, sr[k].y[i]));
        sb_printf(s, "\"/>\n");
        for (int i = 0; i < n; i++) {
            if (!isfinite(x[i]) || !isfinite(sr[k].y[i])) continue;
            sb_printf(s, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>", px(&p, x[i]), py(&p, sr[k].y[i]), sr[k].color);
            sb_esc(s, tips && tips[i] ? tips[i] : "?"); sb_printf(s, ", "); sb_esc(s, sr[k].name);
            sb_printf(s, ": %.4g</title></circle>\n", sr[k].y[i]);
        }
    }
    for (int k = 0; k < nsr; k++) plot_note(&p, k, sr[k].color, sr[k].name);
    if (extra) plot_note(&p, nsr, "#000", extra);
    plot_end(&p);
    fig_end(r, id, at, caption);
    return true;
}

/* Viridis-like colour of t in [0, 1] into b (8 bytes); NaN is grey. */
static void heat_color(char *b, double t)
{
    static const unsigned char stop[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (isnan(t)) { snprintf(b, 8, "#cccccc"); return; }
    t = fmin(fmax(t, 0), 1) * 4;
    int k = t >= 4 ? 3 : (int)t;
    double f = t - k;
    int c[3];
    for (int j = 0; j < 3; j++) c[j] = (int)(stop[k][j] + f * (stop[k + 1][j] - stop[k][j]) + 0.5);
    snprintf(b, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* Mean cos of each profile hook by position, averaged into nb columns over nc positions: cell
 * (nh, nb), NaN where a hook has no finite value; *lo, *hi the finite range. */
static void heat_cells(const struct sweep *w, int nc, int nb, double *cell, double *lo, double *hi)
{
    *lo = INFINITY; *hi = -INFINITY;
    for (int i = 0; i < w->nh; i++) {
        double *v;
        size_t m = num_array(proto_json_get(w->hsim[i], "cos_by_position"), &v);
        for (int b = 0; b < nb; b++) {
            size_t a = (size_t)b * nc / nb, e = (size_t)(b + 1) * nc / nb, k = 0;
            double sum = 0;
            for (size_t j = a; j < e && j < m; j++) if (isfinite(v[j])) { sum += v[j]; k++; }
            cell[(size_t)i * nb + b] = k ? sum / k : NAN;
            if (k) { *lo = fmin(*lo, sum / k); *hi = fmax(*hi, sum / k); }
        }
        free(v);
    }
}

/* The colour scale under the heatmap: lo .. hi left to right. */
static void heat_legend(struct sb *s, double lo, double hi)
{
    char c[8];
    const int n = 32, y = PH + 2;
    const double wd = (double)(PW - ML - MR) / n;
    for (int k = 0; k < n; k++) {
        heat_color(c, (k + 0.5) / n);
        sb_printf(s, "<rect x=\"%.1f\" y=\"%d\" width=\"%.2f\" height=\"10\" fill=\"%s\"/>\n", ML + k * wd, y, wd + 0.3, c);
    }
    sb_printf(s, "<text x=\"%d\" y=\"%d\">%.4f</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4f</text>"
              "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">mean cosine similarity (colour)</text>\n",
              ML, y + 23, lo, PW - MR, y + 23, hi, (ML + PW - MR) / 2, y + 23);
}

/* long: one straight drawing (cells row by row, row labels, axes, colour scale) */
/* The layer x position heatmap: one row per profile hook (network order, top down; a <g
 * class="hm-row"> each), one column per position (averaged into HEAT_COLS columns past that). */
static bool sweep_heatmap(struct report *r, const char *id, const struct sweep *w)
{
    int nc = 0;
    for (int i = 0; i < w->nh; i++) { int m = cJSON_GetArraySize(proto_json_get(w->hsim[i], "cos_by_position")); if (m > nc) nc = m; }
    if (w->nh < 1 || nc < 1) return false;
    int nb = nc < HEAT_COLS ? nc : HEAT_COLS;
    double *cell = malloc((size_t)w->nh * nb * sizeof *cell), lo, hi;   /* (nh, nb) */
    if (!cell) return false;
    heat_cells(w, nc, nb, cell, &lo, &hi);
    if (!isfinite(lo)) { lo = 0; hi = 1; }
    double span = hi > lo ? hi - lo : 1;
    struct sb *s = &r->html;
    size_t at = fig_begin(r);
    svg_open(s, id, "Cosine similarity by depth and position", PH + 34);
    struct plot p = {s, 0, nc, 0, w->nh};
    double rh = py(&p, 0) - py(&p, 1);
    int every = rh >= 9 ? 1 : (int)ceil(9 / rh);
    char c[8];
    for (int i = 0; i < w->nh; i++) {
        double y = py(&p, w->nh - i);
        sb_printf(s, "<g class=\"hm-row\" data-hook=\""); sb_esc(s, w->hook[i] ? w->hook[i] : "?");
        sb_printf(s, "\"><title>"); sb_esc(s, w->hook[i] ? w->hook[i] : "unnamed hook");
        sb_printf(s, ": mean cos %.4f</title>\n", w->hcos[i]);
        for (int b = 0; b < nb; b++) {
            double xa = px(&p, (double)b * nc / nb), xb = px(&p, (double)(b + 1) * nc / nb), v = cell[(size_t)i * nb + b];
            heat_color(c, isnan(v) ? NAN : (v - lo) / span);
            if (b == 0 && i == 0) csv_row(r, "hook,depth,position_lo,position_hi,mean_cos");
            csv_row(r, "%s,%.10g,%.10g,%.10g,%.10g", w->hook[i] ? w->hook[i] : "?", w->hd[i], (double)b * nc / nb, (double)(b + 1) * nc / nb, v);
            sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>", xa, y, xb - xa + 0.3, rh + 0.3, c);
        }
        sb_printf(s, "</g>\n");
        if (i % every == 0) {
            if (isfinite(w->hd[i])) sb_printf(s, "<text class=\"yt\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", ML - 6, y + rh / 2 + 4, w->hd[i]);
            else sb_printf(s, "<text class=\"yt\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">?</text>\n", ML - 6, y + rh / 2 + 4);
        }
    }
    sb_printf(s, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", ML, MT, PW - ML - MR, PH - MT - MB);
    axis_ticks(&p, true, 0, nc, false, true);
    sb_printf(s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">position in context</text>\n", (ML + PW - MR) / 2, PH - 10);
    sb_printf(s, "<text transform=\"translate(14,%d) rotate(-90)\" text-anchor=\"middle\">hook depth (network order, top down)</text>\n",
              (MT + PH - MB) / 2);
    heat_legend(s, lo, hi);
    sb_printf(s, "</svg>\n");
    free(cell);
    fig_end(r, id, at, nc > nb ? "Mean cosine similarity per hook (rows) and context position (columns, averaged in groups)"
                              : "Mean cosine similarity per hook (rows) and context position (columns)");
    return true;
}

/* Weight deviation by layer on the depth axis (block L's weights at L + 1) with the divergence
 * 1 - cos after block L, and the Pearson r between the two (also against the rise over block L). */
static void sweep_wdev(struct report *r, const struct sweep *w)
{
    char ex[96], b1[48], b2[48];
    const char *tips[SWEEP_MAX];
    int m1, m2;
    sb_printf(&r->html, "<h3>Weight deviation by layer, and where the activations diverge</h3>\n<div class=\"grid\">\n");
    for (int k = 0; k < w->nl; k++) tips[k] = w->ltip[k];
    double r1 = pearson(w->lmean, w->l1c, w->nl, &m1), r2 = pearson(w->lmean, w->ldiv, w->nl, &m2);
    snprintf(ex, sizeof ex, "r(mean, 1 - cos) = %s", fmt_f(b1, r1));
    const struct series sr[3] = {{w->lmean, "mean ||A-B||/||A|| of block L", "#4c78a8"},
                                 {w->lmax, "max ||A-B||/||A|| of block L", "#e45756"},
                                 {w->l1c, "1 - cos after block L", "#54a24b"}};
    if (!depth_plot(r, "plot-sweep-wdev", "Weight deviation by layer vs divergence", "relative deviation; 1 - cos", w->ld, w->nl,
                    sr, 3, tips, ex, "Relative Frobenius deviation of block L's tensors (mean, max) at depth L + 1, and the "
                    "divergence 1 - mean cos at blocks.L.hook_resid_post"))
        empty_plot(r, "plot-sweep-wdev", "Weight deviation by layer", "no weight_deviation.by_layer in the sweep document");
    sb_printf(&r->html, "</div>\n<p id=\"sweep-wdev-r\">Is the weight change a predictor of where the activations diverge? "
              "Pearson r between block L's mean weight deviation and 1 - cos at blocks.L.hook_resid_post: <b>r = %s</b> "
              "over %d layers; with the divergence block L adds (1 - cos after it minus before it): <b>r = %s</b> over %d layers "
              "(a dash: under 3 layers with both figures, or no spread).</p>\n", fmt_f(b1, r1), m1, fmt_f(b2, r2), m2);
}

static void sweep_profile_section(struct report *r, const struct sweep *w)
{
    const struct series cs = {w->hcos, "mean cos", "#4c78a8"}, ls = {w->hl2, "mean L2", "#e45756"};
    int nd = 0;
    for (int i = 0; i < w->nh; i++) nd += isnan(w->hd[i]);
    sb_printf(&r->html, "<section id=\"sweep-profile\"><h2>Similarity profile (base vs finetune, same tokens, every hook)</h2>\n");
    if (!w->prof) note(r, "No \"profile\" in the sweep document: the similarity profile is skipped.");
    if (nd) note(r, "%d of %d profile hooks have no depth (not a blocks.L.hook_resid_pre/post name): left out of the plots.", nd, w->nh);
    sb_printf(&r->html, "<div class=\"grid\">\n");
    if (!depth_plot(r, "plot-sweep-profile", "Mean cosine similarity by depth", "mean cosine similarity", w->hd, w->nh, &cs, 1,
                    w->hook, NULL, "Global mean cosine similarity of base and finetune activations at each hook"))
        empty_plot(r, "plot-sweep-profile", "Mean cosine similarity by depth", "no hook with a depth and a cos_mean");
    if (!depth_plot(r, "plot-sweep-profile-l2", "Mean Euclidean distance by depth", "mean L2 distance", w->hd, w->nh, &ls, 1,
                    w->hook, NULL, "Global mean L2 distance of base and finetune activations at each hook"))
        empty_plot(r, "plot-sweep-profile-l2", "Mean Euclidean distance by depth", "no hook with a depth and an l2_mean");
    if (!sweep_heatmap(r, "plot-sweep-heatmap", w))
        empty_plot(r, "plot-sweep-heatmap", "Cosine similarity by depth and position", "no cos_by_position in the profile");
    sb_printf(&r->html, "</div>\n");
    sweep_wdev(r, w);
    sb_printf(&r->html, "</section>\n");
}

/* The per-SAE figures drawn and tabled by depth. */
enum sm_kind { SM_MODEL, SM_CE, SM_TRANSFER, SM_ACTSIM, SM_LIVE };   /* per model: a key, ce_delta; study-wide: a transfer
                                                                  * key, its .mean, density r over live features */
struct smetric { const char *id, *title, *col, *yl, *key; enum sm_kind kind; enum fmt f; };
static const struct smetric SWEEP_METRICS[] = {
    {"l0", "L0 by depth", "L0", "active features / token", "l0", SM_MODEL, F_F},
    {"ce-delta", "CE delta (spliced - clean) by depth", "CE delta (nats)", "nats", NULL, SM_CE, F_F},
    {"ce-recovered", "CE recovered by depth", "CE recovered", "fraction of the ablation's loss", "ce_recovered", SM_MODEL, F_F},
    {"ev", "Explained variance by depth", "explained variance", "explained variance", "explained_variance", SM_MODEL, F_F},
    {"dead", "Dead features by depth", "dead features", "features", "dead_count", SM_MODEL, F_I},
    {"density-r", "Density Pearson r by depth", "density r", "Pearson r (log densities)", "density_pearson", SM_TRANSFER, F_F},
    {"density-r-live", "Density Pearson r over live features by depth", "density r, live", "Pearson r (log densities, live features)", NULL, SM_LIVE, F_F},
    {"act-sim", "Activation similarity by depth", "activation similarity", "mean r, regular features", "activation_similarity", SM_ACTSIM, F_F},
};
#define N_SWEEP_METRICS ((int)(sizeof SWEEP_METRICS / sizeof *SWEEP_METRICS))

/* CE delta of a model block: its ce_delta, else ce_spliced - ce_clean. */
static double model_ce_delta(const cJSON *b)
{
    double d = num_or_nan(b, "ce_delta");
    return isfinite(d) ? d : num_or_nan(b, "ce_spliced") - num_or_nan(b, "ce_clean");
}

/* Figure m of a study for model k (0 base or the single model, 1 finetune; study-wide ones: k 0). */
static double smetric_val(const struct study *st, const struct smetric *m, int k)
{
    const cJSON *tr = proto_json_get(st->doc, "transfer"), *b = k < st->n_models ? st->blk[k] : NULL;
    switch (m->kind) {
    case SM_MODEL: return num_or_nan(b, m->key);
    case SM_CE: return model_ce_delta(b);
    case SM_TRANSFER: return k == 0 ? num_or_nan(tr, m->key) : NAN;
    case SM_ACTSIM: return k == 0 ? num_or_nan(proto_json_get(tr, m->key), "mean") : NAN;
    case SM_LIVE: { double n; return k == 0 ? live_r(st, &n) : NAN; }
    }
    return NAN;
}

static void sweep_metric_plots(struct report *r, const struct sweep *w)
{
    static double v[2][SWEEP_MAX];   /* (2, ns) base, finetune */
    const char *tips[SWEEP_MAX];
    char id[64], t[128];
    for (int i = 0; i < w->ns; i++) tips[i] = w->spath[i];
    sb_printf(&r->html, "<div class=\"grid\" id=\"plot-sweep-metrics\">\n");
    for (int j = 0; j < N_SWEEP_METRICS; j++) {
        const struct smetric *m = &SWEEP_METRICS[j];
        bool pair = m->kind == SM_MODEL || m->kind == SM_CE;
        for (int i = 0; i < w->ns; i++) { v[0][i] = smetric_val(&w->st[i], m, 0); v[1][i] = smetric_val(&w->st[i], m, 1); }
        const struct series sr[2] = {{v[0], pair ? "base" : "base vs finetune", "#4c78a8"}, {v[1], "finetune", "#e45756"}};
        snprintf(id, sizeof id, "plot-sweep-metrics-%s", m->id);
        snprintf(t, sizeof t, "%s at the SAE's hook, by the hook's depth", m->col);
        if (!depth_plot(r, id, m->title, m->yl, w->sd, w->ns, sr, pair ? 2 : 1, tips, NULL, t))
            empty_plot(r, id, m->title, "no study has this figure");
    }
    sb_printf(&r->html, "</div>\n");
}

/* A table cell with the study's verdict (the single-study verdict()), its head in bold. */
static void verdict_cell(struct sb *s, const struct study *st)
{
    char v[1024], head[128];
    const char *cls = "na";
    if (st->doc) cls = verdict(st, v, sizeof v);
    else snprintf(v, sizeof v, "no result: the study has no \"result\" document");
    size_t k = strcspn(v, "(:");
    snprintf(head, sizeof head, "%.*s", (int)(k < sizeof head - 1 ? k : sizeof head - 1), v);
    sb_printf(s, "<td class=\"verdict %s\"><b>", cls); sb_esc(s, head); sb_printf(s, "</b>");
    sb_esc(s, v + k); sb_printf(s, "</td>");
}

/* One row per study: hook, depth, SAE, the SWEEP_METRICS (base and finetune where per model), verdict. */
static void sweep_table(struct report *r, const struct sweep *w)
{
    struct sb *s = &r->html;
    char b[64];
    sb_printf(s, "<table id=\"sweep-table\">\n<tr><th rowspan=\"2\">hook</th><th rowspan=\"2\">depth</th><th rowspan=\"2\">SAE</th>");
    for (int j = 0; j < N_SWEEP_METRICS; j++)
        sb_printf(s, SWEEP_METRICS[j].kind <= SM_CE ? "<th colspan=\"2\">%s</th>" : "<th rowspan=\"2\">%s</th>", SWEEP_METRICS[j].col);
    sb_printf(s, "<th rowspan=\"2\">verdict</th></tr>\n<tr>");
    for (int j = 0; j < N_SWEEP_METRICS; j++) if (SWEEP_METRICS[j].kind <= SM_CE) sb_printf(s, "<th>base</th><th>finetune</th>");
    sb_printf(s, "</tr>\n");
    for (int i = 0; i < w->ns; i++) {
        const char *hk = str_or_null(w->sent[i], "hook"), *sae = str_or_null(w->sent[i], "sae");
        if (!hk) hk = str_or_null(w->st[i].doc, "hook");
        if (!sae) sae = str_or_null(w->st[i].doc, "sae");
        sb_printf(s, "<tr class=\"sweep-row\" data-hook=\""); sb_esc(s, hk ? hk : "");
        sb_printf(s, "\"><td><a href=\"#sweep-study-%d\">", i + 1); sb_esc(s, hk ? hk : "?");
        sb_printf(s, "</a></td><td>%s</td><td>", fmt_i(b, w->sd[i])); sb_esc(s, sae ? sae : "?"); sb_printf(s, "</td>");
        for (int j = 0; j < N_SWEEP_METRICS; j++)
            for (int k = 0; k < (SWEEP_METRICS[j].kind <= SM_CE ? 2 : 1); k++)
                sb_printf(s, "<td>%s</td>", fmt_val(b, smetric_val(&w->st[i], &SWEEP_METRICS[j], k), SWEEP_METRICS[j].f));
        verdict_cell(s, &w->st[i]);
        sb_printf(s, "</tr>\n");
    }
    sb_printf(s, "</table>\n");
}

/* A compact summary per study (folded): where its full result lies, the similarity at its hook,
 * its per-model metrics; the full single-study report is `sf-report studies/DIR/result.json`. */
static void sweep_study_summaries(struct report *r, const struct sweep *w)
{
    struct sb *s = &r->html;
    char n1[48], n2[48];
    sb_printf(s, "<h3>Per-SAE summaries</h3>\n<p>Each study is a whole single-SAE result: <code>sf-report studies/DIR/result.json</code> "
              "renders its full report.</p>\n");
    for (int i = 0; i < w->ns; i++) {
        const struct study *st = &w->st[i];
        const char *dir = str_or_null(w->sent[i], "dir"), *sae = str_or_null(w->sent[i], "sae");
        const cJSON *sim = proto_json_get(st->doc, "similarity");
        sb_printf(s, "<details id=\"sweep-study-%d\"><summary>%d. ", i + 1, i + 1); sb_esc(s, st->path);
        if (sae) { sb_printf(s, " ("); sb_esc(s, sae); sb_printf(s, ")"); }
        sb_printf(s, "</summary>\n");
        if (dir) {
            bool rel = dir[0] != '/' && strncmp(dir, "studies/", 8) != 0;
            sb_printf(s, "<p>result: <a href=\"%s", rel ? "studies/" : ""); sb_esc(s, dir); sb_printf(s, "/result.json\">%s", rel ? "studies/" : "");
            sb_esc(s, dir); sb_printf(s, "/result.json</a>; %d warnings</p>\n", cJSON_GetArraySize(proto_json_get(st->doc, "warnings")));
        }
        if (!st->doc) { note(r, "No result document for %s.", st->path); sb_printf(s, "</details>\n"); continue; }
        sb_printf(s, "<p>similarity at the hook: mean cos %s, mean L2 %s</p>\n", fmt_f(n1, num_or_nan(sim, "cos_mean")), fmt_f(n2, num_or_nan(sim, "l2_mean")));
        metrics_table(r, st, i + 1);
        sb_printf(s, "</details>\n");
    }
}

static void sweep_studies_section(struct report *r, const struct sweep *w)
{
    sb_printf(&r->html, "<section id=\"sweep-studies\"><h2>SAE studies by depth</h2>\n");
    if (w->ns == 0) note(r, "No \"studies\" in the sweep document: the per-SAE plots are empty.");
    sweep_metric_plots(r, w);
    sb_printf(&r->html, "<h3>Per-SAE figures and verdicts</h3>\n");
    sweep_table(r, w);
    thresholds_note(&r->html);
    sweep_study_summaries(r, w);
    sb_printf(&r->html, "</section>\n");
}

/* What was compared: models, tokens, hooks, studies, the forward passes' time. */
static void sweep_intro(struct report *r, const struct sweep *w)
{
    struct sb *s = &r->html;
    const cJSON *d = w->doc, *fs = proto_json_get(d, "forward_seconds");
    const char *b = str_or_null(d, "base"), *f = str_or_null(d, "finetune");
    char n1[48], n2[48], n3[48], n4[48];
    sb_printf(s, "<section id=\"summary\"><h2>Summary</h2>\n<p>Sweep of base <b>"); sb_esc(s, b ? b : "(not given)");
    sb_printf(s, "</b> vs finetune <b>"); sb_esc(s, f ? f : "(not given)");
    sb_printf(s, "</b>: %s tokens, ctx %s; %d hooks profiled, %d SAE studies", fmt_i(n1, num_or_nan(d, "tokens")),
              fmt_i(n2, num_or_nan(d, "ctx")), w->nh, w->ns);
    if (fs) sb_printf(s, "; forward passes %s s (base), %s s (finetune)", fmt_f(n3, num_or_nan(fs, "base")), fmt_f(n4, num_or_nan(fs, "finetune")));
    sb_printf(s, ".</p>\n");
    int nv[4] = {0};   /* ok, mid, bad, na */
    char vb[1024];
    for (int i = 0; i < w->ns; i++) {
        const char *c = w->st[i].doc ? verdict(&w->st[i], vb, sizeof vb) : "na";
        nv[strcmp(c, "ok") == 0 ? 0 : strcmp(c, "mid") == 0 ? 1 : strcmp(c, "bad") == 0 ? 2 : 3]++;
    }
    if (w->ns) sb_printf(s, "<p id=\"sweep-verdicts\">Verdicts of the %d SAEs: %d transfer, %d transfer partly, %d do not transfer, "
                         "%d undetermined (table below).</p>\n", w->ns, nv[0], nv[1], nv[2], nv[3]);
    double v = num_or_nan(d, "saeflow_sweep");
    if (v != 1) note(r, "Sweep format %s: this sf-report knows format 1; what it recognises is drawn.", fmt_g(n1, v));
    if (w->cut) note(r, "More than %d hooks, layers or studies: the first %d of each are drawn.", SWEEP_MAX, SWEEP_MAX);
    sb_printf(s, "</section>\n");
}

static void sweep_provenance(struct report *r, const struct sweep *w)
{
    struct sb *s = &r->html;
    const cJSON *e, *rd = proto_json_get(proto_json_get(w->prof, "provenance"), "reduce");
    footer_open(s);
    sb_printf(s, "<ul><li>sweep document: saeflow "); sb_esc(s, str_or_null(w->doc, "saeflow"));
    sb_printf(s, "</li><li>hooks: <code>");
    cJSON_ArrayForEach(e, proto_json_get(w->doc, "hooks")) if (cJSON_IsString(e)) { sb_esc(s, e->valuestring); sb_printf(s, " "); }
    sb_printf(s, "</code></li>");
    if (rd) { sb_printf(s, "<li>profile: sf-reduce "); sb_esc(s, str_or_null(rd, "version")); sb_printf(s, " "); prov_args(s, proto_json_get(rd, "args")); sb_printf(s, "</li>"); }
    for (int i = 0; i < w->ns; i++) {
        const char *dir = str_or_null(w->sent[i], "dir");
        sb_printf(s, "<li>study %d: ", i + 1); sb_esc(s, w->st[i].path);
        sb_printf(s, ", SAE "); sb_esc(s, str_or_null(w->sent[i], "sae"));
        sb_printf(s, ", dir "); sb_esc(s, dir); sb_printf(s, "</li>");
    }
    sb_printf(s, "</ul>\n");
    throughput_table(s, proto_json_get(w->doc, "throughput"));
    sb_printf(s, "</footer>\n");
}

/* The report of a sweep document (alone): intro, warnings of every part, the similarity profile
 * with the weight deviation, the studies by depth, provenance. */
static void sweep_report(struct report *r, const cJSON *doc)
{
    static struct sweep w;
    static struct study ws[SWEEP_MAX + 2];   /* the sweep, its profile, its studies: for their warnings */
    sweep_load(&w, doc);
    sweep_intro(r, &w);
    study_bind(&ws[0], (cJSON *)doc, "sweep");
    study_bind(&ws[1], (cJSON *)w.prof, "similarity profile");
    for (int i = 0; i < w.ns; i++) ws[2 + i] = w.st[i];
    warnings_section(r, ws, 2 + w.ns, false);
    sweep_profile_section(r, &w);
    sweep_studies_section(r, &w);
    sweep_provenance(r, &w);
}

static const char *CSS =
    "body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}tr.study td{background:#f3f6fa}"
    ".grid{display:flex;flex-wrap:wrap;gap:6px}figure{margin:2px}figcaption{font-size:11px;color:#555;max-width:430px}"
    ".note{color:#8a5a00;background:#fff6e0;padding:4px 8px}li.ok b{color:#1a7f37}li.bad b{color:#c62828}"
    "li.mid b{color:#b26a00}li.na b{color:#555}.thresholds{font-size:12px;color:#444}footer{font-size:12px;color:#444}"
    "li.kv{display:inline-block;margin-right:16px}code{font-size:11px}"
    "td.verdict{text-align:left;max-width:560px}td.ok b{color:#1a7f37}td.bad b{color:#c62828}td.mid b{color:#b26a00}"
    "td.na b{color:#555}details{margin:6px 0}summary{cursor:pointer}"
    "#warnings{border:2px solid #c62828;padding:4px 12px;margin:12px 0}#warnings h2{color:#c62828;margin:4px 0}"
    "li.warn{margin:4px 0}:root{color-scheme:light dark}"
    /* print: a figure, table or verdict is never split over pages, a heading never ends one */
    "@media print{body{margin:0;max-width:none}figure,table,svg,li.warn,ul.verdicts{break-inside:avoid;page-break-inside:avoid}"
    "h1,h2,h3,h4{break-after:avoid;page-break-after:avoid}.grid{display:block}figure{display:inline-block;vertical-align:top}"
    "section{break-before:auto}}"
    /* dark: the page dark, the plots kept as white cards (their colours are chosen for white) */
    "@media (prefers-color-scheme:dark){body{background:#15171a;color:#ddd}td,th{border-color:#555}"
    "tr.study td{background:#1f2a36}figcaption,.thresholds,footer{color:#aaa}"
    ".note{color:#f0c674;background:#3a2f14}li.ok b{color:#5cc26e}li.bad b{color:#ff6b6b}li.mid b{color:#f0a040}"
    "li.na b{color:#bbb}td.ok b{color:#5cc26e}td.bad b{color:#ff6b6b}td.mid b{color:#f0a040}td.na b{color:#bbb}#warnings{border-color:#ff6b6b}#warnings h2{color:#ff6b6b}a{color:#8ab4f8}"
    "svg{border-radius:3px}}"
    /* feature cards (drill-down) */
    ".fcards{display:flex;flex-direction:column;gap:10px}.fcard{border:1px solid #bbb;border-radius:4px;padding:6px 10px;break-inside:avoid}"
    ".fcard h4{margin:2px 0 6px}.role{font-size:11px;font-weight:normal;background:#e8eef6;color:#223;border-radius:3px;padding:1px 5px;margin-left:4px}"
    ".fcols{display:flex;flex-wrap:wrap;gap:16px}.fcol{flex:1 1 560px;min-width:0}.fcol h5{margin:6px 0 2px}"
    "ol.ctx{margin:2px 0;padding-left:22px;font-size:12px}ol.ctx li{margin:3px 0}.cpos{color:#666;font-size:10px;margin-right:4px}"
    ".tk{font-family:DejaVu Sans Mono,monospace;white-space:pre;color:#111;border-radius:2px;padding:0 1px}.tk.at{outline:2px solid #c2410c}"
    ".tk sub{font-size:8px;color:#7a3300}.logits{font-size:12px;margin:2px 0}.lt{margin-right:6px}.lt .tk{background:#eef}"
    ".fnone{color:#666;font-size:12px}"
    /* contents, CSV links, tooltip, sortable headers, the parallel-coordinates filter */
    "#toc ul{list-style:none;padding-left:0;columns:2 420px;font-size:13px;margin:4px 0}#toc li{break-inside:avoid}"
    "#toc li.t3{padding-left:16px}#toc li.tp{padding-left:32px;font-size:11px}#toc h2{margin:8px 0 2px}"
    "a.csv{font-size:10px;border:1px solid #999;border-radius:3px;padding:0 3px;margin-left:4px;text-decoration:none}"
    "#sf-tip{position:absolute;display:none;background:#222;color:#fff;font-size:11px;padding:2px 6px;border-radius:3px;"
    "pointer-events:none;z-index:9;max-width:360px}th.sorth{cursor:pointer}th[aria-sort=ascending]::after{content:' \\25B2'}"
    "th[aria-sort=descending]::after{content:' \\25BC'}.parf{font-size:11px;max-width:430px}.parf label{display:block}"
    "ol.studies{font-size:13px}ol.studies span{color:#222}details.permodel>summary,details.full>summary{font-size:13px}"
    "@media print{#toc,a.csv,#sf-tip,.parf{display:none}details{display:block}}"
    "@media print{details::details-content{content-visibility:visible;display:block}}"
    "@media (prefers-color-scheme:dark){#toc a,a.csv{color:#8ab4f8}a.csv{border-color:#666}ol.studies span{color:#ddd}}"
    "@media (prefers-color-scheme:dark){.fcard{border-color:#555}.role{background:#2a3442;color:#ddd}.cpos,.fnone{color:#aaa}"
    ".tk{color:#eee}.tk sub{color:#ffb070}.lt .tk{background:#2a2a44}}";

/* The page's only script, inline and optional (the page is whole without it): a tooltip with the
 * hovered plot element's <title> (hover values), sorting of table.sortable by a click (or Enter)
 * on a header, a range filter (base and finetune log10 density) under each parallel-coordinates
 * plot, a link into a folded <details> opens it, and printing opens every folded section (closed
 * again after). */
static const char *JS =
    "(function(){'use strict';"
    "var tip=document.createElement('div');tip.id='sf-tip';tip.setAttribute('role','tooltip');document.body.appendChild(tip);"
    "function ttl(t){for(var e=t;e&&e.nodeName!=='svg';e=e.parentNode){for(var i=0;i<e.childNodes.length;i++)"
    "if(e.childNodes[i].nodeName==='title')return e.childNodes[i].textContent;}return null;}"
    "document.addEventListener('mousemove',function(ev){var t=ev.target,s=t&&t.closest?t.closest('svg'):null,x=s&&t!==s?ttl(t):null;"
    "if(!x){tip.style.display='none';return;}tip.textContent=x;tip.style.display='block';"
    "tip.style.left=(ev.pageX+14)+'px';tip.style.top=(ev.pageY+14)+'px';});"
    "function num(x){var v=parseFloat(x);return isNaN(v)?null:v;}"
    "Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(tb){var hr=tb.rows[0];"
    "Array.prototype.forEach.call(hr.cells,function(th,c){var dir=1;th.tabIndex=0;th.className+=' sorth';th.title='sort by this column';"
    "function go(){var rows=Array.prototype.slice.call(tb.rows,1);rows.sort(function(a,b){var x=a.cells[c]?a.cells[c].textContent:'',"
    "y=b.cells[c]?b.cells[c].textContent:'',u=num(x),v=num(y);if(u!==null&&v!==null)return (u-v)*dir;if(u!==null)return -1;"
    "if(v!==null)return 1;return x.localeCompare(y)*dir;});rows.forEach(function(r){r.parentNode.appendChild(r);});"
    "Array.prototype.forEach.call(hr.cells,function(h){h.removeAttribute('aria-sort');});"
    "th.setAttribute('aria-sort',dir>0?'ascending':'descending');dir=-dir;}"
    "th.addEventListener('click',go);th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();go();}});});});"
    "Array.prototype.forEach.call(document.querySelectorAll('svg[id$=\"-density-parallel\"]'),function(sv){"
    "var ls=sv.querySelectorAll('line[data-b]'),d=document.createElement('div'),inp={},out=document.createElement('output');"
    "d.className='parf';d.setAttribute('data-for',sv.id);"
    "[['b','base'],['f','finetune']].forEach(function(a){var l=document.createElement('label');l.textContent=a[1]+' log10 density ';"
    "inp[a[0]]=[];['from','to'].forEach(function(w,k){var i=document.createElement('input');i.type='range';i.min='-10.5';i.max='0.5';"
    "i.step='0.25';i.value=k?'0.5':'-10.5';i.setAttribute('aria-label',a[1]+' log10 density '+w);i.addEventListener('input',upd);"
    "l.appendChild(document.createTextNode(' '+w+' '));l.appendChild(i);inp[a[0]].push(i);});d.appendChild(l);});d.appendChild(out);"
    "function upd(){var n=0,r={};['b','f'].forEach(function(k){var a=+inp[k][0].value,b=+inp[k][1].value;r[k]=[Math.min(a,b),Math.max(a,b)];});"
    "Array.prototype.forEach.call(ls,function(l){var b=+l.getAttribute('data-b'),f=+l.getAttribute('data-f'),"
    "on=b>=r.b[0]&&b<=r.b[1]&&f>=r.f[0]&&f<=r.f[1];l.style.display=on?'':'none';if(on)n++;});"
    "out.textContent=' base '+r.b[0]+'..'+r.b[1]+', finetune '+r.f[0]+'..'+r.f[1]+': '+n+' of '+ls.length+' lines shown';}"
    "sv.parentNode.insertBefore(d,sv.nextSibling);upd();});"
    "function openTo(){var h=location.hash.slice(1),e=h?document.getElementById(decodeURIComponent(h)):null;"
    "for(;e;e=e.parentNode)if(e.nodeName==='DETAILS')e.open=true;}"
    "window.addEventListener('hashchange',openTo);openTo();"
    "var shut=[];window.addEventListener('beforeprint',function(){shut=Array.prototype.filter.call("
    "document.querySelectorAll('details:not([open])'),function(d){d.open=true;return true;});});"
    "window.addEventListener('afterprint',function(){shut.forEach(function(d){d.open=false;});shut=[];});"
    "})();";

/* ======================== table of contents ======================== */
/* Appends the text of t up to the first of stop (tags skipped). */
static const char *toc_text(struct sb *toc, const char *t, const char *stop)
{
    const char *e = strstr(t, stop);
    if (!e) e = t + strlen(t);
    for (bool tag = false; t < e; t++) {
        if (*t == '<') tag = true;
        else if (*t == '>') tag = false;
        else if (!tag) sb_printf(toc, "%c", *t);
    }
    return e;
}

/* Copies body (the report after its <h1>) into out with an id added to every bare <h2>/<h3>
 * (sec-N), and writes into toc (nav id toc) one link per such heading and per plot (<svg id>, its
 * aria-label as the text), in page order: h3 entries indented, plots as small links under them. */
static void toc_build(struct sb *out, struct sb *toc, const char *body)
{
    int sec = 0;
    sb_printf(toc, "<nav id=\"toc\" aria-label=\"Contents\"><h2>Contents</h2>\n<ul>\n");
    for (const char *c = body; *c;) {
        const char *t = strchr(c, '<');
        if (!t) { sb_printf(out, "%s", c); break; }
        sb_printf(out, "%.*s<", (int)(t - c), c);
        c = t + 1;
        if (t[1] == 'h' && (t[2] == '2' || t[2] == '3') && t[3] == '>') {
            sb_printf(out, "h%c id=\"sec-%d\">", t[2], ++sec);
            sb_printf(toc, "<li class=\"t%c\"><a href=\"#sec-%d\">", t[2], sec);
            toc_text(toc, t + 4, "</h");
            sb_printf(toc, "</a></li>\n");
            c = t + 4;
        } else if (strncmp(t, "<svg ", 5) == 0) {
            const char *end = strchr(t, '>'), *id = strstr(t, " id=\""), *al = strstr(t, " aria-label=\"");
            if (!end || !id || id > end) continue;
            sb_printf(toc, "<li class=\"tp\"><a href=\"#%.*s\">", (int)strcspn(id + 5, "\""), id + 5);
            if (al && al < end) sb_printf(toc, "%.*s", (int)strcspn(al + 13, "\""), al + 13);
            else sb_printf(toc, "%.*s", (int)strcspn(id + 5, "\""), id + 5);
            sb_printf(toc, "</a></li>\n");
        }
    }
    sb_printf(toc, "</ul></nav>\n");
}

/* ======================== usage ======================== */
/* long: one straight help text (the plot id list is the tests' reference); split, it would read worse */
static void usage(FILE *fp)
{
    fprintf(fp,
"usage: sf-report [options] [REDUCE.json ...]\n"
"\n"
"Writes one self-contained HTML report (inline SVG, no network; one small inline script, the page\n"
"whole without it) from one or more sf-reduce JSON documents (default: stdin; -i FILE adds one).\n"
"Each document is one study; several are shown side by side and compared on shared axes (e.g. two\n"
"finetunes of one base). Blocks missing from a document (no loss, no transfer, ...) are skipped\n"
"with a note; the rest is rendered.\n"
"\n"
"Options:\n"
"  --png DIR        also write every plot as DIR/<plot id>.png (rsvg-convert, librsvg2-bin)\n"
"  --title TEXT     report title (default \"saeflow report\")\n"
"\n"
"Layout: a table of contents (nav id toc: a link to every section heading and every plot), the\n"
"studies' warnings when there are any (sf-reduce's \"warnings\": outliers over 1%%, too\n"
"few tokens, NaNs, a cut vocabulary), a summary table (per-model metrics side by side; the similarity\n"
"and transfer figures of each study, the density Pearson r over live features too) and one verdict\n"
"line per study; with several studies, section compare (shared axes); then per study: similarity\n"
"plots, base and finetune overlaid on shared axes (the per-model panels folded under them),\n"
"transfer plots, weight deviation, features, the per-model metrics table; a provenance footer (inputs'\n"
"header metas, stage versions and args, sf-reduce args, date). Table numbers: \"%%.4f\" (\"%%.4g\"\n"
"from 1e9), counts \"%%.0f\", fractions as percentages \"%%.2f%%%%\"; a missing value is a dash.\n"
"\n"
"Verdict thresholds: \"SAE transfers\" when finetune ce_delta <= %.1f x base ce_delta, regular-feature\n"
"activation similarity mean >= %.1f and density Pearson r >= %.1f; \"does not transfer\" when the\n"
"ce_delta ratio > %.0f, activation similarity < %.1f or finetune r2_pooled < %.0f; else \"transfers\n"
"partly\"; \"undetermined\" (with the reason) when one of the three is missing, when either model has\n"
"over %.0f%% outliers (the seed's method assumes under 1%%; it then says what the feature figures\n"
"alone say); a base ce_delta under %.2f nats is floored at it for the ratio, a negative finetune\n"
"ce_delta counts as 0. The result's \"warnings\" are listed at the top of the report (section id warnings).\n"
"\n"
"Plot ids (<svg id=...>, S = study number 1, 2, ...; MODEL = base, finetune or model):\n"
"  plot-S-sim-cos-hist, plot-S-sim-l2-hist        token histograms of cos and L2 (sf-reduce bins; cos\n"
"                                                 zoomed to its non-empty bins)\n"
"  plot-S-sim-cos-hist-full                       cos over the full -1..1 (in a <details> under it)\n"
"  plot-S-overlay-act-hist, plot-S-overlay-density-hist, plot-S-overlay-norm-hist\n"
"                                                 base and finetune on shared axes (legend, both\n"
"                                                 outlier thresholds dashed)\n"
"  plot-S-sim-cos-pos, plot-S-sim-l2-pos          mean by context position\n"
"  plot-S-sim-cos-row, plot-S-sim-l2-row          histograms of the per-row means\n"
"  plot-S-MODEL-act-hist                          log10 non-zero feature activations (zero count noted)\n"
"  plot-S-MODEL-density-hist                      log10 feature density (dead count noted)\n"
"  plot-S-MODEL-norm-hist                         activation norms, outlier threshold as a red line\n"
"  plot-S-transfer-density-scatter                log density base vs finetune, regression lines and r\n"
"                                                 over all features and over live ones (log10\n"
"                                                 density > -9 in both: not dead in either)\n"
"  plot-S-transfer-density-parallel               parallel coordinates of log densities\n"
"  plot-S-transfer-err-dead-base, plot-S-transfer-err-dead-finetune   activation error histograms\n"
"  plot-S-transfer-act-sim, plot-S-transfer-logit-sim                 regular-feature similarities\n"
"  plot-S-weights-layer                           weight deviation ||A-B||/||A|| by layer: mean and max\n"
"  plot-S-weights-kind                            weight deviation by tensor kind: mean (bars), max (marks)\n"
"  plot-compare-act-sim-cdf                       several studies: activation-similarity CDFs\n"
"  plot-compare-density-r, plot-compare-ce-recovered, plot-compare-l0   grouped bars by study\n"
"  tables: summary, metrics-S; verdict lines: verdict-S; warnings: warnings; footer: provenance\n"
"Every plot's caption has a CSV link: a data: URI (text/csv, percent-encoded) holding exactly the\n"
"plotted series (bins, points, or a binned plot's cells; none for an empty set's plot). Script\n"
"(inline, optional): a tooltip with the hovered element's <title> (every bar and point has one),\n"
"a click on a header of the features table sorts it, range sliders under the parallel\n"
"coordinates filter its lines by base and finetune log10 density.\n""Features (sf-reduce's \"features\" block, the drill-down): section features-S, its index table\n"
"  features-table-S and one card per shown feature, feature-card-S-ID (ID = feature index): roles (best/\n"
"  worst transfer by activation similarity, dead in one model only, asked with --features), log10 density\n"
"  and max activation per model, activation and logit similarity, each model's top activating contexts\n"
"  (every token shaded by its activation / the feature's max, the activation as a subscript and in the\n"
"  title, the max token outlined) and top/bottom logit tokens. Token ids are decoded with the pieces\n"
"  sf-reduce put in features.pieces (the base tokenizer), else shown as #ID.\n"
"\n"
"Sweeps: a sweep document (pipelines/sweep.sh OUT/result.json, top-level \"saeflow_sweep\": 1;\n"
"proto/PROTOCOL.md section 5 \"Sweeps\"), given alone, gets a report with a depth axis (blocks run:\n"
"0 = embeddings, block L's output L + 1): the similarity profile over every hook, block L's weight\n"
"deviation at depth L + 1 with the Pearson r between its mean and 1 - cos at blocks.L.hook_resid_post\n"
"(id sweep-wdev-r), each SAE study's figures by depth, a table with one row per study (sweep-table,\n"
"the verdict above per row) and a folded summary per study (sweep-study-K, its table metrics-K):\n"
"  plot-sweep-profile, plot-sweep-profile-l2      global mean cos and L2 per hook, by depth\n"
"  plot-sweep-heatmap                             mean cos per hook (rows) and position (columns)\n"
"  plot-sweep-wdev                                weight deviation by layer (mean, max), 1 - cos\n"
"  plot-sweep-metrics-M                           M = l0, ce-delta, ce-recovered, ev, dead (base and\n"
"                                                 finetune), density-r, density-r-live (features not\n"
"                                                 dead in either), act-sim (in div plot-sweep-metrics)\n"
"A missing part is said in words or as a plot saying so; a sweep with other inputs: exit 2.\n"
"\n"
"An empty set's plot is a short one saying \"no features in this set\" (no axes); every plot is an\n"
"<svg role=\"img\"> with an aria-label and a <title>. Print and dark-mode (prefers-color-scheme) CSS.\n"
"\n"
"Large SAEs: above %d features the density scatter is a %dx%d 2-D histogram over log density\n"
"[-10.5, 0.5] (cell shade = log count; the regression line and r use every feature); above %d\n"
"features the parallel coordinates draw one line per (base bin, finetune bin) pair of width %.2f,\n"
"width and opacity by log count. So d_sae 65536 gives a report of a few hundred kB.\n"
"\n"
"Examples:\n"
"  sf-reduce --base b.sf --finetune f.sf > study.json && sf-report study.json -o report.html\n"
"  sf-report gemma-python.json gemma-chat.json -o both.html --png plots/\n"
"  sf-report sweep/result.json -o sweep.html\n"
"\n", V_CE_RATIO_OK, V_ACTSIM_OK, V_PEARSON_OK, V_CE_RATIO_BAD, V_ACTSIM_BAD, V_R2_BAD, 100 * V_OUTLIER_MAX, V_CE_FLOOR,
            SCATTER_POINTS, SCATTER_BINS, SCATTER_BINS, PAR_LINES, PAR_BIN);
    proto_cli_help_common(fp);
}

enum { OPT_PNG = PROTO_OPT_FIRST_FREE, OPT_TITLE };

static void parse(struct opts *o, int argc, char **argv)
{
    static const struct option lo[] = {PROTO_CLI_LONGOPTS, {"png", required_argument, 0, OPT_PNG},
                                       {"title", required_argument, 0, OPT_TITLE}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    proto_cli_init(&o->cli, argv[0]);
    int c;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, lo, NULL)) != -1) {
        switch (c) {
        case OPT_PNG: o->png_dir = optarg; break;
        case OPT_TITLE: o->title = optarg; break;
        case 'i':
            if (o->n_in >= MAX_STUDIES) proto_usage_error("at most %d inputs", MAX_STUDIES);
            o->in[o->n_in++] = optarg; break;
        default: if (!proto_cli_common(&o->cli, c, optarg, usage)) proto_usage_error("unknown option"); break;
        }
    }
    for (; optind < argc; optind++) {
        if (o->n_in >= MAX_STUDIES) proto_usage_error("at most %d inputs", MAX_STUDIES);
        o->in[o->n_in++] = argv[optind];
    }
    if (o->n_in == 0) o->in[o->n_in++] = "-";
    proto_cli_finish(&o->cli, false);
    for (int i = 0; i < o->n_in; i++) proto_cli_check_distinct(o->cli.out, o->in[i]);
}

/* Reads one study (IN: a file or "-"): false, with the error printed, when it cannot be read. */
static bool study_load(struct study *st, const char *in)
{
    int line, err;
    st->path = strcmp(in, "-") == 0 ? "stdin" : in;
    st->doc = load_json(in, &line, &err);
    if (!st->doc) {
        if (err) proto_error("%s: %s", st->path, strerror(err));
        else proto_error("%s:%d: not a valid JSON object", st->path, line);
        return false;
    }
    study_bind(st, st->doc, st->path);
    return true;
}

/* ======================== several studies compared ======================== */
static const char *const STUDY_COL[8] = {"#4c78a8", "#e45756", "#54a24b", "#b279a2", "#f58518", "#72b7b2", "#9d755d", "#eeca3b"};
#define CDF_POINTS 400      /* points drawn per study on the activation-similarity CDF */

/* The sorted finite values of transfer.activation_similarity.values of a study (malloc'd, *n). */
static double *act_sim_sorted(const struct study *st, size_t *n)
{
    double *v;
    size_t m = num_array(proto_json_get(proto_json_get(proto_json_get(st->doc, "transfer"), "activation_similarity"), "values"), &v), k = 0;
    for (size_t i = 0; i < m; i++) if (isfinite(v[i])) v[k++] = v[i];
    for (size_t i = 1; i < k; i++) { double t = v[i]; size_t j = i; while (j > 0 && v[j - 1] > t) { v[j] = v[j - 1]; j--; } v[j] = t; }
    *n = k;
    return v;
}

/* The empirical CDFs of the studies' regular-feature activation similarity on one pair of axes:
 * at most CDF_POINTS points per study (every point a CSV row: study, value, fraction <= value). */
static bool compare_cdf(struct report *r, const struct study *st, int ns)
{
    double *v[MAX_STUDIES], lo = INFINITY, hi = -INFINITY;
    size_t n[MAX_STUDIES];
    for (int i = 0; i < ns; i++) {
        v[i] = act_sim_sorted(&st[i], &n[i]);
        if (n[i]) { lo = fmin(lo, v[i][0]); hi = fmax(hi, v[i][n[i] - 1]); }
    }
    bool any = isfinite(lo);
    if (any) {
        const char *id = "plot-compare-act-sim-cdf";
        size_t at = fig_begin(r);
        struct plot p;
        plot_begin(&p, &r->html, id, "Activation similarity CDF, studies compared", "Pearson r of activations (regular features)",
                   "fraction of features <= r", lo - 0.02 * (hi - lo + 1e-3), fmax(hi, lo + 1e-3), false, 0, 1.05, false);
        csv_row(r, "study,activation_similarity,cumulative_fraction");
        for (int i = 0; i < ns; i++) {
            if (!n[i]) continue;
            const char *c = STUDY_COL[i % 8];
            size_t step = n[i] > CDF_POINTS ? (n[i] + CDF_POINTS - 1) / CDF_POINTS : 1;
            sb_printf(&r->html, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
            for (size_t j = 0; j < n[i]; j = j + step < n[i] || j == n[i] - 1 ? j + step : n[i] - 1) {
                sb_printf(&r->html, "%.1f,%.1f ", px(&p, v[i][j]), py(&p, (double)(j + 1) / n[i]));
                csv_row(r, "%d,%.10g,%.10g", i + 1, v[i][j], (double)(j + 1) / n[i]);
            }
            sb_printf(&r->html, "\"><title>study %d: ", i + 1); sb_esc(&r->html, st[i].path);
            sb_printf(&r->html, " (%zu features, median %.3f)</title></polyline>\n", n[i], v[i][n[i] / 2]);
            char b[160];
            snprintf(b, sizeof b, "\xe2\x96\xa0 study %d (%zu features, median %.3f)", i + 1, n[i], v[i][n[i] / 2]);
            sb_printf(&r->html, "<text x=\"%d\" y=\"%d\" fill=\"%s\" stroke=\"#f7f7f7\" stroke-width=\"4\" paint-order=\"stroke\">", ML + 8, MT + 16 + 14 * i, c);
            sb_esc(&r->html, b); sb_printf(&r->html, "</text>\n");
        }
        plot_end(&p);
        fig_end(r, id, at, "Empirical CDF of each study's regular-feature activation similarity (left: worse transfer)");
    }
    for (int i = 0; i < ns; i++) free(v[i]);
    return any;
}

/* Grouped bars: one group per study (x), one bar per series (y[i] of study i), a zero line. */
static bool compare_bars(struct report *r, const char *id, const char *title, const char *yl, const struct series *sr, int nsr, int ns)
{
    double y0 = 0, y1 = 0;
    for (int k = 0; k < nsr; k++) for (int i = 0; i < ns; i++) if (isfinite(sr[k].y[i])) { y0 = fmin(y0, sr[k].y[i]); y1 = fmax(y1, sr[k].y[i]); }
    if (y0 == 0 && y1 == 0) return false;
    size_t at = fig_begin(r);
    struct plot p;
    double pad = 0.1 * (y1 - y0);
    plot_begin(&p, &r->html, id, title, "", yl, 0, ns, false, y0 < 0 ? y0 - pad : 0, y1 + 3 * pad, false);
    char b[48];
    const double w = 0.8 / nsr;
    csv_row(r, "study,series,value");
    for (int i = 0; i < ns; i++) {
        snprintf(b, sizeof b, "study %d", i + 1);
        tick(&p, true, i + 0.5, b);
        for (int k = 0; k < nsr; k++) {
            double v = sr[k].y[i], xa = px(&p, i + 0.1 + k * w), xb = px(&p, i + 0.1 + (k + 1) * w);
            if (!isfinite(v)) continue;
            double ya = py(&p, fmax(v, 0)), yb = py(&p, fmin(v, 0));
            sb_printf(&r->html, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>study %d, %s: %.4f</title></rect>"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"9\">%.3g</text>\n",
                      xa, ya, fmax(xb - xa - 1, 0.6), fmax(yb - ya, 0.6), sr[k].color, i + 1, sr[k].name, v, (xa + xb) / 2, ya - 3, v);
            csv_row(r, "%d,%s,%.10g", i + 1, sr[k].name, v);
        }
    }
    sb_printf(&r->html, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>\n", ML, py(&p, 0), PW - MR, py(&p, 0));
    for (int k = 0; k < nsr; k++) { snprintf(b, sizeof b, "\xe2\x96\xa0 %s", sr[k].name); plot_note(&p, k, sr[k].color, b); }
    plot_end(&p);
    fig_end(r, id, at, title);
    return true;
}

/* Several studies on shared axes: the activation-similarity CDFs, and density r (all, live),
 * CE recovered and L0 (base, finetune) as grouped bars by study. */
static void compare_section(struct report *r, const struct study *st, int ns)
{
    static double v[6][MAX_STUDIES];   /* density r, live r, CE recovered base, finetune, L0 base, finetune */
    struct sb *s = &r->html;
    sb_printf(s, "<section id=\"compare\"><h2>Studies compared on shared axes</h2>\n<ol class=\"studies\">");
    for (int i = 0; i < ns; i++) {
        double m;
        sb_printf(s, "<li style=\"color:%s\"><span>study %d: ", STUDY_COL[i % 8], i + 1); sb_esc(s, st[i].path); sb_printf(s, "</span></li>");
        v[0][i] = num_or_nan(proto_json_get(st[i].doc, "transfer"), "density_pearson");
        v[1][i] = live_r(&st[i], &m);
        for (int k = 0; k < 2; k++) {
            const cJSON *b = k < st[i].n_models ? st[i].blk[k] : NULL;
            v[2 + k][i] = num_or_nan(b, "ce_recovered"); v[4 + k][i] = num_or_nan(b, "l0");
        }
    }
    sb_printf(s, "</ol>\n<div class=\"grid\">\n");
    if (!compare_cdf(r, st, ns)) empty_plot(r, "plot-compare-act-sim-cdf", "Activation similarity CDF", "no study has activation similarity values");
    const struct series dr[2] = {{v[0], "all features", "#d62728"}, {v[1], "live features", "#2a8a3a"}},
                        ce[2] = {{v[2], "base", "#4c78a8"}, {v[3], "finetune", "#e45756"}}, l0[2] = {{v[4], "base", "#4c78a8"}, {v[5], "finetune", "#e45756"}};
    if (!compare_bars(r, "plot-compare-density-r", "Density Pearson r by study", "Pearson r (log10 densities)", dr, 2, ns))
        empty_plot(r, "plot-compare-density-r", "Density Pearson r by study", "no study has a density r");
    if (!compare_bars(r, "plot-compare-ce-recovered", "CE recovered by study", "fraction of the ablation's loss", ce, 2, ns))
        empty_plot(r, "plot-compare-ce-recovered", "CE recovered by study", "no study has CE recovered (needs --ablate)");
    if (!compare_bars(r, "plot-compare-l0", "L0 by study", "active features / token", l0, 2, ns))
        empty_plot(r, "plot-compare-l0", "L0 by study", "no study has L0");
    sb_printf(s, "</div></section>\n");
}

/* The report of one or more study documents, side by side. */
static void studies_report(struct report *r, struct study *st, int ns)
{
    struct sb *s = &r->html;
    warnings_section(r, st, ns, true);
    summary(r, st, ns);
    if (ns > 1) compare_section(r, st, ns);
    for (int i = 0; i < ns; i++) {
        sb_printf(s, "<section id=\"study-%d\"><h2>Study %d: ", i + 1, i + 1);
        sb_esc(s, st[i].path);
        sb_printf(s, "</h2>\n");
        if (st[i].n_models == 2) similarity_section(r, &st[i], i + 1);
        else if (proto_json_get(st[i].doc, "similarity")) similarity_section(r, &st[i], i + 1);
        bool pair = st[i].n_models == 2 && st[i].blk[0] && st[i].blk[1];
        if (pair) {
            overlay_section(r, &st[i], i + 1);
            sb_printf(s, "<details class=\"permodel\"><summary>Each model on its own axes (per-model panels)</summary>\n");
        }
        for (int m = 0; m < st[i].n_models; m++) {
            if (st[i].blk[m]) model_section(r, &st[i], i + 1, m);
            else note(r, "No \"%s\" block in %s: its plots are skipped.", st[i].names[m], st[i].path);
        }
        if (pair) sb_printf(s, "</details>\n");
        if (st[i].n_models == 2) transfer_section(r, &st[i], i + 1);
        else if (!st[i].blk[0]) note(r, "No per-model block (\"base\"/\"finetune\"/\"model\") in %s.", st[i].path);
        if (st[i].n_models == 2 || proto_json_get(st[i].doc, "weight_deviation")) weights_section(r, &st[i], i + 1);
        if (proto_json_get(st[i].doc, "features")) features_section(r, &st[i], i + 1);
        metrics_table(r, &st[i], i + 1);
        sb_printf(s, "</section>\n");
    }
    provenance(r, st, ns);
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(&o, argc, argv);
    static struct study st[MAX_STUDIES];
    int ns = o.n_in, rc = PROTO_EXIT_OK;
    for (int i = 0; i < ns; i++)
        if (!study_load(&st[i], o.in[i])) {
            for (int j = 0; j < i; j++) cJSON_Delete(st[j].doc);
            return PROTO_EXIT_FAIL;
        }
    bool sweep = false;
    for (int i = 0; i < ns; i++) sweep = sweep || proto_json_get(st[i].doc, "saeflow_sweep");
    if (sweep && ns > 1) {
        proto_error("a sweep document (\"saeflow_sweep\") is reported alone: %d inputs given", ns);
        for (int j = 0; j < ns; j++) cJSON_Delete(st[j].doc);
        return PROTO_EXIT_USAGE;
    }
    const char *title = o.title ? o.title : sweep && str_or_null(st[0].doc, "title") ? str_or_null(st[0].doc, "title") : "saeflow report";
    if (o.png_dir && mkdir(o.png_dir, 0777) != 0 && errno != EEXIST) {
        proto_error("%s: %s", o.png_dir, strerror(errno));
        return PROTO_EXIT_FAIL;
    }
    struct report r = {.png_dir = o.png_dir};
    struct sb *s = &r.html;
    sb_printf(s, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>");
    sb_esc(s, title);
    sb_printf(s, "</title>\n<style>%s</style></head>\n<body>\n<h1>", CSS);
    sb_esc(s, title);
    sb_printf(s, "</h1>\n");
    size_t top = s->n;
    if (sweep) sweep_report(&r, st[0].doc);
    else studies_report(&r, st, ns);
    struct sb page = {0}, toc = {0}, body = {0};   /* head, contents, body with heading ids */
    toc_build(&body, &toc, s->p + top);
    sb_printf(&page, "%.*s%.*s%.*s<script>%s</script>\n</body></html>\n", (int)top, s->p, (int)toc.n, toc.p, (int)body.n, body.p, JS);
    free(s->p); free(toc.p); free(body.p); free(r.csv.p);
    *s = page;
    if (r.err) { proto_error("%s: %s", r.err_where, strerror(r.err)); rc = PROTO_EXIT_FAIL; }
    if (rc == PROTO_EXIT_OK) {
        if (strcmp(o.cli.out, "-") != 0) {   /* temp + rename: the report is whole or absent */
            int err = proto_write_atomic(o.cli.out, s->p, s->n);
            if (err) { proto_error("%s", proto_detail()); rc = proto_exit_code(err); }
        } else if (fwrite(s->p, 1, s->n, stdout) != s->n || fflush(stdout) != 0) {
            proto_error("stdout: %s", strerror(errno));
            rc = PROTO_EXIT_FAIL;
        }
        proto_info("%zu bytes of HTML, %d PNG", s->n, r.png_count);
    }
    free(s->p);
    for (int i = 0; i < ns; i++) cJSON_Delete(st[i].doc);
    return rc;
}
