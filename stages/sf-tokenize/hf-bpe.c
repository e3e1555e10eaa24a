/* hf-bpe.c - Hugging Face tokenizer.json (model type BPE) in C, matching the Rust `tokenizers`
 * crate (the code transformers' fast tokenizers run) id for id.
 *
 * The pipeline, in the crate's order:
 *   0. input bytes -> valid UTF-8 (one U+FFFD per maximal invalid subsequence, WHATWG decoder)
 *   1. added tokens with normalized=false are cut out of the raw text (leftmost-longest match,
 *      lstrip/rstrip swallow the whitespace beside them); each cut becomes its id, the text
 *      between cuts is processed on its own ("segment")
 *   2. each non-empty segment goes through the normalizer (Sequence of Prepend / Replace with a
 *      String pattern); added tokens with normalized=true are then cut out of the normalized text
 *   3. pre-tokenizer: none (the segment is one word) or Metaspace (replace ' ', prepend scheme
 *      always/first/never, optional split into words that each start with the replacement)
 *   4. BPE per word: one symbol per character (its vocab id; else its UTF-8 bytes as <0xNN>
 *      pieces with byte_fallback; else unk, consecutive unks fused with fuse_unk), then merges
 *      applied lowest rank first, leftmost first (the crate's priority queue with stale entries
 *      skipped). Where provably exact, a segment is cut into words before "▁" and words' ids
 *      are cached (see bpe_words).
 * Hash tables: vocab (string -> id), merges ((left id, right id) -> (rank, merged id)) and a
 * code point -> id table for single characters. model.vocab and model.merges are scanned in
 * place (not through cJSON): Gemma v1 (256k pieces, 580k merges) loads in about 0.3 s.
 * Not supported (load error): other model types, byte-level / regex pre-tokenizers, Unicode
 * normalizers (NFC, NFKC, ...), Regex patterns, BPE dropout, single_word added tokens.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "json.h"
#include "proto.h"
#include "tokenizer.h"

#define N_BMP 0x10000

/* ------------------------------------------------------------------ small buffers */

int ids_reserve(struct ids *a, size_t cap)
{
    if (cap <= a->cap) return 0;
    size_t nc = a->cap ? a->cap : 256;
    while (nc < cap) nc *= 2;
    int32_t *v = realloc(a->v, nc * sizeof *v);
    if (!v) return -1;
    a->v = v; a->cap = nc;
    return 0;
}

int ids_push(struct ids *a, int32_t id)
{
    if (a->n == a->cap && ids_reserve(a, a->n + 1) != 0) return -1;
    a->v[a->n++] = id;
    return 0;
}

void ids_destroy(struct ids *a) { free(a->v); memset(a, 0, sizeof *a); }

struct sbuf { char *p; size_t n, cap; };

static int sbuf_reserve(struct sbuf *b, size_t cap)
{
    if (cap <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 1024;
    while (nc < cap) nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p) return -1;
    b->p = p; b->cap = nc;
    return 0;
}

static int sbuf_put(struct sbuf *b, const char *s, size_t n)
{
    if (sbuf_reserve(b, b->n + n + 1) != 0) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* ------------------------------------------------------------------ tokenizer state */

enum norm_kind { NORM_PREPEND, NORM_REPLACE };
struct norm_step { enum norm_kind kind; char *pat; size_t pat_len; char *rep; size_t rep_len; };

struct added_tok { char *s; size_t len; int32_t id; bool lstrip, rstrip; };
/* A set of added tokens matched leftmost-longest; by_byte[c] lists those starting with byte c,
 * longest first. */
struct added_set { struct added_tok *t; int n; int *order; int first[257]; };

struct vslot { uint32_t hash, off, len; int32_t id; };          /* id < 0: empty */
struct mslot { uint64_t key; uint32_t rank; int32_t new_id; };  /* key UINT64_MAX: empty */
/* Per-thread direct-mapped cache of merge lookups (hits and misses; new_id -1 = no merge):
 * a text repeats its pairs, and the big merge table (Gemma: 16 MB) misses the CPU caches. */
#define PCACHE_SIZE 16384
/* Per-thread cache of whole words' ids (see bpe_words). Emptied when half full. */
#define WCACHE_SLOTS 65536
#define WCACHE_MAX_WORD 64
struct wslot { uint64_t h; uint32_t koff, klen, ioff, n_ids; };   /* klen 0: empty */

enum { META_NEVER, META_FIRST, META_ALWAYS };

struct symbol { int32_t id; int32_t prev, next; uint32_t len; };
/* A queued merge of symbol pos with its right neighbour. pair_len = their byte lengths at push
 * time: symbols only grow, so a changed sum marks a stale entry (the crate compares the merged
 * id of the current pair instead; both tests accept exactly the same entries). */
struct merge_item { uint32_t rank, pos; int32_t new_id; uint32_t pair_len; };

struct hf_bpe {
    int32_t n_vocab;                 /* max id + 1 over vocab and added tokens */
    char *arena; size_t arena_len;   /* vocab piece strings */
    struct vslot *vocab; uint32_t vmask;
    struct mslot *merges; uint32_t mmask;
    int32_t *char_id;                /* (N_BMP): id of the single-character piece of a BMP code point, -1 */
    int32_t byte_id[256];            /* id of <0xNN>, -1 */
    int32_t unk_id;                  /* -1: no unk token (unknown characters are dropped) */
    bool byte_fallback, fuse_unk, ignore_merges;
    struct norm_step *norm; int n_norm;
    bool meta; char meta_rep[8]; size_t meta_rep_len; int meta_prepend; bool meta_split;
    struct added_set raw, normed;    /* normalized=false / normalized=true added tokens */
    int32_t bos_id;
    const struct hf_bpe *owner;      /* a worker copy: tables belong to owner, scratch is ours */
    /* scratch, reused across calls */
    struct sbuf clean, na, nb, mw;
    struct symbol *sym; size_t sym_cap;
    struct merge_item *heap; size_t heap_cap;
    struct mslot *pcache;            /* (PCACHE_SIZE), allocated on first use */
    bool word_split;                 /* segments may be cut before a "▁" that follows another char */
    struct wslot *wcache;            /* (WCACHE_SLOTS) word -> ids, allocated on first use */
    uint32_t wcache_n;
    struct sbuf wkeys; struct ids wids;
};

/* ------------------------------------------------------------------ hashing */

static uint32_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;             /* FNV-1a 64, folded */
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 1099511628211ULL; }
    return (uint32_t)(h ^ (h >> 32));
}

static uint64_t mix64(uint64_t x)                    /* splitmix64 finalizer */
{
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

static int32_t vocab_get(const struct hf_bpe *t, const char *s, size_t n)
{
    uint32_t h = hash_str(s, n);
    for (uint32_t i = h & t->vmask;; i = (i + 1) & t->vmask) {
        const struct vslot *v = &t->vocab[i];
        if (v->id < 0) return -1;
        if (v->hash == h && v->len == n && memcmp(t->arena + v->off, s, n) == 0) return v->id;
    }
}

/* later duplicates win, as when serde fills a HashMap */
static void vocab_put(struct hf_bpe *t, uint32_t off, uint32_t n, int32_t id)
{
    const char *s = t->arena + off;
    uint32_t h = hash_str(s, n);
    for (uint32_t i = h & t->vmask;; i = (i + 1) & t->vmask) {
        struct vslot *v = &t->vocab[i];
        if (v->id < 0 || (v->hash == h && v->len == n && memcmp(t->arena + v->off, s, n) == 0)) {
            v->hash = h; v->off = off; v->len = n; v->id = id;
            return;
        }
    }
}

static const struct mslot *merge_get(const struct hf_bpe *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = (uint32_t)mix64(key) & t->mmask;; i = (i + 1) & t->mmask) {
        const struct mslot *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}

/* The merge of (a, b) through the per-thread cache: its rank and new id, or new_id -1. */
static struct mslot merge_find(struct hf_bpe *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    struct mslot *c = &t->pcache[(((uint32_t)a * 0x9E3779B1u) ^ ((uint32_t)b * 0x85EBCA77u)) >> 18];
    if (c->key != key) {
        const struct mslot *m = merge_get(t, a, b);
        *c = m ? *m : (struct mslot){ key, 0, -1 };
    }
    return *c;
}

static void merge_put(struct hf_bpe *t, int32_t a, int32_t b, uint32_t rank, int32_t new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = (uint32_t)mix64(key) & t->mmask;; i = (i + 1) & t->mmask) {
        struct mslot *m = &t->merges[i];
        if (m->key == key || m->key == UINT64_MAX) { m->key = key; m->rank = rank; m->new_id = new_id; return; }
    }
}

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the UTF-8 character starting at s (valid input). */
static inline size_t utf8_len(uint8_t c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static inline uint32_t utf8_cp(const uint8_t *s, size_t n)
{
    switch (n) {
    case 1: return s[0];
    case 2: return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3: return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default: return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                    ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_valid_at(const uint8_t *s, size_t n, size_t *consumed)
{
    uint8_t c = s[0];
    size_t need; uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) { *consumed = 1; return 1; }
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else { *consumed = 1; return 0; }
    size_t j = 1;
    for (size_t k = 0; k < need; k++, j++) {
        if (j >= n || s[j] < lo || s[j] > hi) { *consumed = j; return 0; }
        lo = 0x80; hi = 0xBF;
    }
    *consumed = j;
    return j;
}

/* WHATWG UTF-8 decode with replacement (= Python errors="replace"): each maximal invalid
 * subsequence becomes U+FFFD. Returns s itself when it is valid, else the cleaned copy in b. */
static const char *utf8_clean(const char *s, size_t n, struct sbuf *b, size_t *out_n)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, used;
    while (i < n && (u[i] < 0x80 || utf8_valid_at(u + i, n - i, &used))) i += u[i] < 0x80 ? 1 : used;
    if (i == n) { *out_n = n; return s; }
    b->n = 0;
    if (sbuf_put(b, s, i) != 0) return NULL;
    while (i < n) {
        size_t len = utf8_valid_at(u + i, n - i, &used);
        if (len) { if (sbuf_put(b, s + i, len) != 0) return NULL; }
        else if (sbuf_put(b, "\xEF\xBF\xBD", 3) != 0) return NULL;
        i += used;
    }
    *out_n = b->n;
    return b->p;
}

/* ------------------------------------------------------------------ BPE on one word */

static int heap_push(struct hf_bpe *t, size_t *n, struct merge_item it)
{
    if (*n == t->heap_cap) {
        size_t nc = t->heap_cap ? t->heap_cap * 2 : 1024;
        struct merge_item *h = realloc(t->heap, nc * sizeof *h);
        if (!h) return -1;
        t->heap = h; t->heap_cap = nc;
    }
    struct merge_item *h = t->heap;
    size_t i = (*n)++;
    while (i > 0) {                       /* sift up: min (rank, pos) at the root */
        size_t p = (i - 1) / 2;
        if (h[p].rank < it.rank || (h[p].rank == it.rank && h[p].pos <= it.pos)) break;
        h[i] = h[p]; i = p;
    }
    h[i] = it;
    return 0;
}

static struct merge_item heap_pop(struct hf_bpe *t, size_t *n)
{
    struct merge_item *h = t->heap, top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && (h[c + 1].rank < h[c].rank || (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos))) c++;
        if (last.rank < h[c].rank || (last.rank == h[c].rank && last.pos <= h[c].pos)) break;
        h[i] = h[c]; i = c;
    }
    h[i] = last;
    return top;
}

static int sym_add(struct hf_bpe *t, size_t *n, int32_t id, uint32_t len)
{
    if (*n == t->sym_cap) {
        size_t nc = t->sym_cap ? t->sym_cap * 2 : 1024;
        struct symbol *s = realloc(t->sym, nc * sizeof *s);
        if (!s) return -1;
        t->sym = s; t->sym_cap = nc;
    }
    t->sym[*n] = (struct symbol){ id, (int32_t)*n - 1, (int32_t)*n + 1, len };
    (*n)++;
    return 0;
}

static int bpe_word(struct hf_bpe *t, const char *w, size_t n, struct ids *out)
{
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = vocab_get(t, w, n);
        if (id >= 0) return ids_push(out, id);
    }
    /* 1. one symbol per character (the crate's merge_word) */
    size_t ns = 0;
    int32_t unk = -1; uint32_t unk_len = 0;   /* a pending unk, flushed before a known char */
    const uint8_t *u = (const uint8_t *)w;
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_len(u[i]);
        if (i + cl > n) cl = n - i;
        uint32_t cp = utf8_cp(u + i, cl);
        int32_t id = cp < N_BMP ? t->char_id[cp] : vocab_get(t, w + i, cl);
        if (id >= 0) {
            if (unk >= 0) { if (sym_add(t, &ns, unk, unk_len)) return -1; unk = -1; }
            if (sym_add(t, &ns, id, (uint32_t)cl)) return -1;
        } else {
            bool done = false;
            if (t->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < cl; k++) all = all && t->byte_id[u[i + k]] >= 0;
                if (all) {
                    for (size_t k = 0; k < cl; k++) if (sym_add(t, &ns, t->byte_id[u[i + k]], 1)) return -1;
                    done = true;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (unk >= 0 && t->fuse_unk) unk_len += (uint32_t)cl;
                else {
                    if (unk >= 0 && sym_add(t, &ns, unk, unk_len)) return -1;
                    unk = t->unk_id; unk_len = (uint32_t)cl;
                }
            }
        }
        i += cl;
    }
    if (unk >= 0 && sym_add(t, &ns, unk, unk_len)) return -1;
    if (ns == 0) return 0;
    if (!t->pcache) {
        if (!(t->pcache = malloc(PCACHE_SIZE * sizeof *t->pcache))) return -1;
        for (int i = 0; i < PCACHE_SIZE; i++) t->pcache[i].key = UINT64_MAX;
    }
    struct symbol *s = t->sym;
    s[ns - 1].next = -1;

    /* 2. merges, lowest rank first then leftmost (the crate's merge_all) */
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        struct mslot m = merge_find(t, s[i].id, s[i + 1].id);
        if (m.new_id >= 0 && heap_push(t, &nh, (struct merge_item){ m.rank, (uint32_t)i, m.new_id, s[i].len + s[i + 1].len })) return -1;
    }
    while (nh > 0) {
        struct merge_item top = heap_pop(t, &nh);
        struct symbol *cur = &t->sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t nx = cur->next;
        struct symbol right = t->sym[nx];
        if (cur->len + right.len != top.pair_len) continue;   /* stale entry */
        cur->id = top.new_id; cur->len += right.len; cur->next = right.next;
        t->sym[nx].len = 0;
        if (right.next >= 0) t->sym[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            struct mslot pm = merge_find(t, t->sym[cur->prev].id, cur->id);
            if (pm.new_id >= 0 && heap_push(t, &nh, (struct merge_item){ pm.rank, (uint32_t)cur->prev, pm.new_id,
                                                             t->sym[cur->prev].len + cur->len })) return -1;
            cur = &t->sym[top.pos];
        }
        if (cur->next >= 0) {
            struct mslot nm = merge_find(t, cur->id, t->sym[cur->next].id);
            if (nm.new_id >= 0 && heap_push(t, &nh, (struct merge_item){ nm.rank, top.pos, nm.new_id, cur->len + t->sym[cur->next].len })) return -1;
        }
    }
    if (ids_reserve(out, out->n + ns) != 0) return -1;
    for (int32_t i = 0; i >= 0; i = t->sym[i].next) out->v[out->n++] = t->sym[i].id;
    return 0;
}

/* ------------------------------------------------------------------ word splitting and cache
 * Without a splitting pre-tokenizer the crate runs BPE on a whole segment (a whole document).
 * When no vocab piece has a "▁" right after a character other than "▁" (true of Mistral and
 * Gemma: only runs of ▁ hold an inner ▁), no merge can join a symbol ending in such a
 * character with one starting with "▁", so cutting the segment before each such "▁" gives
 * exactly the same ids (merges inside each word keep their relative order). The short words
 * repeat, so their ids are cached per thread, as the crate caches words. */

static uint64_t hash64(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 1099511628211ULL; }
    return h;
}

static int bpe_cached(struct hf_bpe *t, const char *w, size_t n, struct ids *out)
{
    if (n == 0) return 0;
    if (n > WCACHE_MAX_WORD) return bpe_word(t, w, n, out);
    if (!t->wcache && !(t->wcache = calloc(WCACHE_SLOTS, sizeof *t->wcache))) return -1;
    uint64_t h = hash64(w, n);
    uint32_t i = (uint32_t)h & (WCACHE_SLOTS - 1);
    for (;; i = (i + 1) & (WCACHE_SLOTS - 1)) {
        struct wslot *e = &t->wcache[i];
        if (e->klen == 0) break;
        if (e->h == h && e->klen == n && memcmp(t->wkeys.p + e->koff, w, n) == 0) {
            if (ids_reserve(out, out->n + e->n_ids)) return -1;
            memcpy(out->v + out->n, t->wids.v + e->ioff, e->n_ids * sizeof *out->v);
            out->n += e->n_ids;
            return 0;
        }
    }
    size_t before = out->n;
    if (bpe_word(t, w, n, out)) return -1;
    if (t->wcache_n >= WCACHE_SLOTS / 2) {               /* full: start over */
        memset(t->wcache, 0, WCACHE_SLOTS * sizeof *t->wcache);
        t->wcache_n = 0; t->wkeys.n = 0; t->wids.n = 0;
        i = (uint32_t)h & (WCACHE_SLOTS - 1);
    }
    size_t n_ids = out->n - before;
    if (sbuf_put(&t->wkeys, w, n) || ids_reserve(&t->wids, t->wids.n + n_ids)) return -1;
    if (n_ids) memcpy(t->wids.v + t->wids.n, out->v + before, n_ids * sizeof *out->v);   /* an empty word: no memcpy from NULL */
    t->wcache[i] = (struct wslot){ h, (uint32_t)(t->wkeys.n - n), (uint32_t)n, (uint32_t)t->wids.n, (uint32_t)n_ids };
    t->wids.n += n_ids;
    t->wcache_n++;
    return 0;
}

#define SP "\xE2\x96\x81"     /* U+2581 ▁ */

static int bpe_words(struct hf_bpe *t, const char *s, size_t n, struct ids *out)
{
    if (!t->word_split) return bpe_word(t, s, n, out);
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++) {
        if (memcmp(s + i, SP, 3) == 0 && !(i >= 3 && memcmp(s + i - 3, SP, 3) == 0) && i > start) {
            if (bpe_cached(t, s + start, i - start, out)) return -1;
            start = i;
            i += 2;
        }
    }
    return bpe_cached(t, s + start, n - start, out);
}

/* Decides word_split at load: "▁" is a piece and no piece has "▁" after another character. */
static void set_word_split(struct hf_bpe *t)
{
    t->word_split = !t->ignore_merges && vocab_get(t, SP, 3) >= 0;
    for (uint32_t i = 0; i <= t->vmask && t->word_split; i++) {
        const struct vslot *v = &t->vocab[i];
        if (v->id < 0) continue;
        const char *p = t->arena + v->off;
        for (uint32_t k = 1; k + 3 <= v->len; k++)
            if (memcmp(p + k, SP, 3) == 0 && !(k >= 3 && memcmp(p + k - 3, SP, 3) == 0)) { t->word_split = false; break; }
    }
}

/* ------------------------------------------------------------------ pipeline */

/* Applies the normalizer steps to s[0..n); the result is in one of t's scratch buffers. */
static const char *normalize(struct hf_bpe *t, const char *s, size_t n, size_t *out_n)
{
    const char *cur = s; size_t cn = n;
    struct sbuf *bufs[2] = { &t->na, &t->nb };
    int w = 0;
    for (int k = 0; k < t->n_norm; k++) {
        const struct norm_step *st = &t->norm[k];
        struct sbuf *b = bufs[w];
        if (cn == 0) break;                 /* Prepend skips empty strings; Replace is a no-op */
        b->n = 0;
        if (st->kind == NORM_PREPEND) {
            if (sbuf_put(b, st->rep, st->rep_len) || sbuf_put(b, cur, cn)) return NULL;
        } else {
            size_t i = 0;
            while (i < cn) {
                const char *hit = st->pat_len ? memmem(cur + i, cn - i, st->pat, st->pat_len) : NULL;
                if (!hit) { if (sbuf_put(b, cur + i, cn - i)) return NULL; break; }
                if (sbuf_put(b, cur + i, (size_t)(hit - (cur + i))) || sbuf_put(b, st->rep, st->rep_len)) return NULL;
                i = (size_t)(hit - cur) + st->pat_len;
            }
        }
        cur = b->p; cn = b->n; w ^= 1;
    }
    *out_n = cn;
    return cur ? cur : "";
}

/* Leftmost-longest match of an added token at s[i..n); returns its index or -1. */
static int added_match(const struct added_set *a, const char *s, size_t i, size_t n)
{
    uint8_t c = (uint8_t)s[i];
    for (int k = a->first[c]; k < a->first[c + 1]; k++) {
        const struct added_tok *at = &a->t[a->order[k]];
        if (at->len <= n - i && memcmp(s + i, at->s, at->len) == 0) return a->order[k];
    }
    return -1;
}

/* Metaspace pre-tokenizer + BPE of one normalized piece. first: it starts the input. */
static int pretok_and_bpe(struct hf_bpe *t, const char *s, size_t n, bool first, struct ids *out)
{
    if (n == 0) return 0;
    if (!t->meta) return bpe_words(t, s, n, out);
    struct sbuf *b = &t->mw;
    b->n = 0;
    /* the crate replaces ' ' first, then tests whether the piece starts with the replacement */
    bool starts = s[0] == ' ' || (n >= t->meta_rep_len && memcmp(s, t->meta_rep, t->meta_rep_len) == 0);
    bool prepend = !starts && (t->meta_prepend == META_ALWAYS || (t->meta_prepend == META_FIRST && first));
    if (prepend && sbuf_put(b, t->meta_rep, t->meta_rep_len)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') { if (sbuf_put(b, t->meta_rep, t->meta_rep_len)) return -1; }
        else if (sbuf_put(b, s + i, 1)) return -1;
    }
    /* bpe_word does not touch t->mw, so words can point into it */
    const char *p = b->p; size_t m = b->n;
    if (!t->meta_split) return bpe_words(t, p, m, out);
    size_t start = 0;
    for (size_t i = 1; i + t->meta_rep_len <= m; i++) {        /* MergedWithNext */
        if (memcmp(p + i, t->meta_rep, t->meta_rep_len) == 0) {
            if (bpe_cached(t, p + start, i - start, out)) return -1;
            start = i;
            i += t->meta_rep_len - 1;
        }
    }
    return bpe_cached(t, p + start, m - start, out);
}

/* Byte length of the character at s[0..n) if it is whitespace (Rust char::is_whitespace), else 0. */
static size_t ws_len(const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t l = utf8_len(u[0]);
    if (l > n) return 0;
    uint32_t c = utf8_cp(u, l);
    bool ws = (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
              (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
    return ws ? l : 0;
}

/* Whitespace character ending at s[hi) (not before lo): its byte length, else 0. */
static size_t ws_len_before(const char *s, size_t lo, size_t hi)
{
    size_t b = hi;
    while (b > lo && ((uint8_t)s[b - 1] & 0xC0) == 0x80) b--;
    if (b == lo) return 0;
    b--;
    return ws_len(s + b, hi - b) == hi - b ? hi - b : 0;
}

typedef int (*piece_fn)(struct hf_bpe *t, const char *s, size_t n, bool first, struct ids *out);

/* Cuts the tokens of set a out of s[0..n) (leftmost-longest, as the crate's aho-corasick):
 * each token's id goes to out, the text between them to piece(). An lstrip/rstrip token also
 * swallows the whitespace on its left/right. first: s starts the input (Metaspace "first"). */
static int split_added(struct hf_bpe *t, const struct added_set *a, const char *s, size_t n, bool first,
                       struct ids *out, piece_fn piece)
{
    size_t start = 0, w;
    for (size_t i = 0; i < n;) {
        int k = a->n ? added_match(a, s, i, n) : -1;
        if (k < 0) { if (!a->n) break; i++; continue; }
        const struct added_tok *at = &a->t[k];
        size_t seg_end = i, tok_end = i + at->len;
        if (at->lstrip) while ((w = ws_len_before(s, start, seg_end)) > 0) seg_end -= w;
        if (at->rstrip) while (tok_end < n && (w = ws_len(s + tok_end, n - tok_end)) > 0) tok_end += w;
        if (piece(t, s + start, seg_end - start, first && start == 0, out)) return -1;
        if (ids_push(out, at->id)) return -1;
        i = start = tok_end;
    }
    return piece(t, s + start, n - start, first && start == 0, out);
}

/* A piece of the input between raw added tokens: normalizer, then the added tokens with
 * normalized=true (matched on the normalized text; the pieces between them may live in
 * t->na/nb, which pretok_and_bpe does not touch), then pre-tokenizer and BPE. */
static int do_segment(struct hf_bpe *t, const char *s, size_t n, bool first, struct ids *out)
{
    if (n == 0) return 0;
    size_t nn;
    const char *ns = normalize(t, s, n, &nn);
    if (!ns) return -1;
    return split_added(t, &t->normed, ns, nn, first, out, pretok_and_bpe);
}

int hf_bpe_encode(struct hf_bpe *t, const char *text, size_t len, struct ids *out)
{
    if (len == 0) return 0;
    size_t n;
    const char *s = utf8_clean(text, len, &t->clean, &n);
    if (!s) return -1;
    return split_added(t, &t->raw, s, n, true, out, do_segment);
}

int hf_bpe_bos_id(const struct hf_bpe *t) { return t->bos_id; }
int hf_bpe_vocab_size(const struct hf_bpe *t) { return t->n_vocab; }

static void added_set_destroy(struct added_set *a)
{
    for (int i = 0; i < a->n; i++) free(a->t[i].s);
    free(a->t); free(a->order);
}

struct hf_bpe *hf_bpe_worker(const struct hf_bpe *t)
{
    struct hf_bpe *w = malloc(sizeof *w);
    if (!w) return NULL;
    *w = *t;
    w->owner = t;
    memset(&w->clean, 0, sizeof w->clean); memset(&w->na, 0, sizeof w->na);
    memset(&w->nb, 0, sizeof w->nb); memset(&w->mw, 0, sizeof w->mw);
    w->sym = NULL; w->sym_cap = 0; w->heap = NULL; w->heap_cap = 0; w->pcache = NULL;
    w->wcache = NULL; w->wcache_n = 0;
    memset(&w->wkeys, 0, sizeof w->wkeys); memset(&w->wids, 0, sizeof w->wids);
    return w;
}

void hf_bpe_free(struct hf_bpe *t)
{
    if (!t) return;
    free(t->clean.p); free(t->na.p); free(t->nb.p); free(t->mw.p);
    free(t->sym); free(t->heap); free(t->pcache);
    free(t->wcache); free(t->wkeys.p); ids_destroy(&t->wids);
    if (t->owner) { free(t); return; }
    free(t->arena); free(t->vocab); free(t->merges); free(t->char_id);
    for (int k = 0; k < t->n_norm; k++) { free(t->norm[k].pat); free(t->norm[k].rep); }
    free(t->norm);
    added_set_destroy(&t->raw); added_set_destroy(&t->normed);
    free(t);
}

/* ------------------------------------------------------------------ loading */

#define FAIL(...) do { snprintf(err, err_cap, __VA_ARGS__); goto fail; } while (0)

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

/* tokenizer.json is read leniently through proto/json.h: a key that is absent, null or of the
 * wrong type keeps its default (a getter leaves *out alone unless it returns 1), so a getter's
 * result is looked at only where a key is required. */

static int add_norm(struct hf_bpe *t, const cJSON *n, char *err, size_t err_cap)
{
    if (!n || cJSON_IsNull(n)) return 0;
    const char *type = NULL;
    if (proto_json_str(n, "type", &type) != 1) { snprintf(err, err_cap, "normalizer without a type"); return -1; }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *c;
        cJSON_ArrayForEach(c, proto_json_get(n, "normalizers"))
            if (add_norm(t, c, err, err_cap)) return -1;
        return 0;
    }
    struct norm_step st = {0};
    if (strcmp(type, "Prepend") == 0) {
        const char *p = NULL;
        if (proto_json_str(n, "prepend", &p) != 1) { snprintf(err, err_cap, "Prepend normalizer without 'prepend'"); return -1; }
        st.kind = NORM_PREPEND; st.rep = strdup(p); st.rep_len = strlen(p);
    } else if (strcmp(type, "Replace") == 0) {
        const cJSON *pat = proto_json_get(n, "pattern");
        const char *ps = NULL, *content = NULL;
        if (proto_json_str(pat, "String", &ps) != 1 || proto_json_str(n, "content", &content) != 1) {
            snprintf(err, err_cap, "unsupported normalizer: Replace with a %s pattern (only String is supported)",
                     proto_json_get(pat, "Regex") ? "Regex" : "missing");
            return -1;
        }
        st.kind = NORM_REPLACE; st.pat = strdup(ps); st.pat_len = strlen(ps);
        st.rep = strdup(content); st.rep_len = strlen(content);
    } else {
        snprintf(err, err_cap, "unsupported normalizer type '%s' (supported: Sequence, Prepend, Replace)", type);
        return -1;
    }
    struct norm_step *ns = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *ns);
    if (!ns || (st.kind == NORM_REPLACE && !st.pat) || !st.rep) {
        free(st.pat); free(st.rep);
        if (ns) t->norm = ns;
        snprintf(err, err_cap, "out of memory");
        return -1;
    }
    t->norm = ns; t->norm[t->n_norm++] = st;
    return 0;
}

static int set_pretok(struct hf_bpe *t, const cJSON *p, char *err, size_t err_cap)
{
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = NULL;
    proto_json_str(p, "type", &type);
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *arr = proto_json_get(p, "pretokenizers");
        if (cJSON_GetArraySize(arr) == 1) return set_pretok(t, cJSON_GetArrayItem(arr, 0), err, err_cap);
    }
    if (!type || strcmp(type, "Metaspace") != 0) {
        snprintf(err, err_cap, "unsupported pre_tokenizer '%s' (supported: none, Metaspace)", type ? type : "?");
        return -1;
    }
    const char *rep = "\xE2\x96\x81";
    proto_json_str(p, "replacement", &rep);
    if (strlen(rep) == 0 || strlen(rep) >= sizeof t->meta_rep) { snprintf(err, err_cap, "Metaspace replacement '%s' not supported", rep); return -1; }
    t->meta = true;
    strcpy(t->meta_rep, rep); t->meta_rep_len = strlen(rep);
    const char *scheme = NULL;
    bool prefix_space = false;
    if (proto_json_str(p, "prepend_scheme", &scheme) == 1)
        t->meta_prepend = strcmp(scheme, "always") == 0 ? META_ALWAYS : strcmp(scheme, "first") == 0 ? META_FIRST : META_NEVER;
    else {
        proto_json_bool(p, "add_prefix_space", &prefix_space);
        t->meta_prepend = prefix_space ? META_ALWAYS : META_NEVER;
    }
    t->meta_split = true;
    proto_json_bool(p, "split", &t->meta_split);
    return 0;
}

static int added_set_build(struct added_set *a)
{
    memset(a->first, 0, sizeof a->first);
    a->order = malloc((size_t)(a->n ? a->n : 1) * sizeof *a->order);
    if (!a->order) return -1;
    /* counting sort by first byte, then longest first inside a bucket (insertion sort) */
    int cnt[257] = {0};
    for (int i = 0; i < a->n; i++) cnt[(uint8_t)a->t[i].s[0] + 1]++;
    for (int c = 0; c < 256; c++) cnt[c + 1] += cnt[c];
    memcpy(a->first, cnt, sizeof cnt);
    int pos[256];
    for (int c = 0; c < 256; c++) pos[c] = cnt[c];
    for (int i = 0; i < a->n; i++) a->order[pos[(uint8_t)a->t[i].s[0]]++] = i;
    for (int c = 0; c < 256; c++)
        for (int i = a->first[c] + 1; i < a->first[c + 1]; i++)
            for (int j = i; j > a->first[c] && a->t[a->order[j]].len > a->t[a->order[j - 1]].len; j--) {
                int tmp = a->order[j]; a->order[j] = a->order[j - 1]; a->order[j - 1] = tmp;
            }
    return 0;
}

static int added_push(struct added_set *a, const char *s, size_t n, int32_t id, bool lstrip, bool rstrip)
{
    struct added_tok *nt = realloc(a->t, (size_t)(a->n + 1) * sizeof *nt);
    if (!nt) return -1;
    a->t = nt;
    char *d = dup_n(s, n);
    if (!d) return -1;
    a->t[a->n++] = (struct added_tok){ d, n, id, lstrip, rstrip };
    return 0;
}

/* BOS: the first special token of post_processor.single (TemplateProcessing), else an added
 * token spelled <bos> or <s>. */
static int32_t find_bos(const cJSON *root, const struct hf_bpe *t)
{
    const cJSON *pp = proto_json_get(root, "post_processor");
    const char *ptype = NULL, *name = NULL;
    proto_json_str(pp, "type", &ptype);
    if (ptype && strcmp(ptype, "TemplateProcessing") == 0) {
        const cJSON *first = cJSON_GetArrayItem(proto_json_get(pp, "single"), 0);
        if (proto_json_str(proto_json_get(first, "SpecialToken"), "id", &name) == 1) {
            const cJSON *sp = proto_json_get(proto_json_get(pp, "special_tokens"), name);
            const cJSON *id0 = cJSON_GetArrayItem(proto_json_get(sp, "ids"), 0);
            double d = cJSON_IsNumber(id0) ? id0->valuedouble : -1;
            if (d >= 0 && d <= INT32_MAX && d == floor(d)) return (int32_t)d;   /* a token id, else no BOS here */
        }
    }
    const char *names[] = { "<bos>", "<s>" };
    for (int k = 0; k < 2; k++) {
        const cJSON *a;
        cJSON_ArrayForEach(a, proto_json_get(root, "added_tokens")) {
            const char *c = NULL;
            long long id;
            if (proto_json_str(a, "content", &c) == 1 && strcmp(c, names[k]) == 0 && proto_json_int(a, "id", 0, INT32_MAX, &id) == 1)
                return (int32_t)id;
        }
        int32_t id = vocab_get(t, names[k], strlen(names[k]));
        if (id >= 0) return id;
    }
    return -1;
}

/* ---- a small JSON scanner for the two big values, model.vocab and model.merges ----
 * (Gemma: 256k + 580k entries). cJSON would build a node per entry; scanning them in place is
 * several times faster. The rest of the file (small) still goes through cJSON, with those two
 * values blanked out to {} and []. */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* p at '"': decodes the string into out (appending), returns the byte after the closing quote,
 * or NULL when malformed. */
static const char *json_string(const char *p, const char *e, struct sbuf *out)
{
    if (p >= e || *p != '"') return NULL;
    p++;
    for (;;) {
        const char *q = p;
        while (q < e && *q != '"' && *q != '\\') q++;
        if (q >= e || sbuf_put(out, p, (size_t)(q - p))) return NULL;
        if (*q == '"') return q + 1;
        if (q + 1 >= e) return NULL;
        char c = q[1], lit = 0;
        p = q + 2;
        switch (c) {
        case '"': lit = '"'; break;   case '\\': lit = '\\'; break; case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;  case 'f': lit = '\f'; break;  case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;  case 't': lit = '\t'; break;
        case 'u': {
            unsigned cp = 0, lo = 0;
            if (p + 4 > e || sscanf(p, "%4x", &cp) != 1) return NULL;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {          /* a surrogate pair */
                if (p + 6 > e || p[0] != '\\' || p[1] != 'u' || sscanf(p + 2, "%4x", &lo) != 1 || lo < 0xDC00 || lo > 0xDFFF) return NULL;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) return NULL;
            char u[4]; size_t n;
            if (cp < 0x80) { u[0] = (char)cp; n = 1; }
            else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
            else if (cp < 0x10000) { u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[2] = (char)(0x80 | (cp & 0x3F)); n = 3; }
            else { u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4; }
            if (sbuf_put(out, u, n)) return NULL;
            continue;
        }
        default: return NULL;
        }
        if (sbuf_put(out, &lit, 1)) return NULL;
    }
}

/* Skips one JSON value (not validated beyond nesting and strings); NULL when malformed. */
static const char *skip_value(const char *p, const char *e)
{
    int depth = 0;
    do {
        p = skip_ws(p, e);
        if (p >= e) return NULL;
        if (*p == '"') {
            for (p++; p < e && *p != '"'; p++) if (*p == '\\') p++;
            if (p >= e) return NULL;
            p++;
        } else if (*p == '{' || *p == '[') { depth++; p++; }
        else if (*p == '}' || *p == ']') { if (--depth < 0) return NULL; p++; }
        else if (*p == ',' || *p == ':') { if (depth == 0) return NULL; p++; }
        else {
            const char *q = p;
            while (p < e && *p && !strchr(" \t\r\n,:]}", *p)) p++;
            if (p == q) return NULL;   /* a byte no value starts with (a NUL): no progress, malformed */
        }
    } while (depth > 0);
    return p;
}

/* Walks the object at p, descending into the top-level "model" object, and records where its
 * "vocab" and "merges" values are. Returns the byte after '}' or NULL when malformed. */
struct ranges { const char *vocab[2], *merges[2]; bool in_model; };

static const char *walk_object(const char *p, const char *e, struct ranges *r, struct sbuf *key)
{
    p = skip_ws(p, e);
    if (p >= e || *p != '{') return NULL;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (;;) {
        key->n = 0;
        if (!(p = json_string(p, e, key))) return NULL;
        p = skip_ws(p, e);
        if (p >= e || *p != ':') return NULL;
        const char *v = skip_ws(p + 1, e), *end;
        bool is_model = !r->in_model && key->n == 5 && memcmp(key->p, "model", 5) == 0 && v < e && *v == '{';
        bool is_vocab = r->in_model && key->n == 5 && memcmp(key->p, "vocab", 5) == 0;
        bool is_merges = r->in_model && key->n == 6 && memcmp(key->p, "merges", 6) == 0;
        if (is_model) { r->in_model = true; end = walk_object(v, e, r, key); r->in_model = false; }
        else end = skip_value(v, e);
        if (!end) return NULL;
        if (is_vocab) { r->vocab[0] = v; r->vocab[1] = end; }
        if (is_merges) { r->merges[0] = v; r->merges[1] = end; }
        p = skip_ws(end, e);
        if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
        if (p < e && *p == '}') return p + 1;
        return NULL;
    }
}

struct ventry { uint32_t off, len; int32_t id; };

/* model.vocab {"piece": id, ...} -> arena, hash table, char and byte tables. */
static int load_vocab(struct hf_bpe *t, const char *p, const char *e, int32_t *max_id, char *err, size_t err_cap)
{
    struct sbuf arena = {0};
    struct ventry *ve = NULL; size_t n = 0, cap = 0;
    int rc = -1;
    if (sbuf_reserve(&arena, (size_t)(e - p) + 1)) goto oom;      /* decoded + NULs <= encoded */
    p = skip_ws(p + 1, e);                                            /* past '{' */
    while (p < e && *p != '}') {
        size_t off = arena.n;
        if (!(p = json_string(p, e, &arena))) { snprintf(err, err_cap, "vocab: malformed JSON string"); goto out; }
        if (sbuf_put(&arena, "", 1)) goto oom;
        p = skip_ws(p, e);
        if (p >= e || *p != ':') { snprintf(err, err_cap, "vocab: expected ':'"); goto out; }
        p = skip_ws(p + 1, e);
        int64_t id = 0; const char *d = p;
        while (p < e && *p >= '0' && *p <= '9' && id <= INT32_MAX) id = id * 10 + (*p++ - '0');
        if (p == d || id > INT32_MAX || (p < e && strchr(".eE-", *p)))
            { snprintf(err, err_cap, "vocab entry '%s' has no valid id", arena.p + off); goto out; }
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            struct ventry *nv = realloc(ve, cap * sizeof *nv);
            if (!nv) goto oom;
            ve = nv;
        }
        ve[n++] = (struct ventry){ (uint32_t)off, (uint32_t)(arena.n - 1 - off), (int32_t)id };
        p = skip_ws(p, e);
        if (p < e && *p == ',') p = skip_ws(p + 1, e);
    }
    t->arena = arena.p; t->arena_len = arena.n; arena.p = NULL;
    t->vmask = pow2_at_least((uint64_t)n * 3 / 2 + 16) - 1;
    t->vocab = malloc(((size_t)t->vmask + 1) * sizeof *t->vocab);
    t->char_id = malloc(N_BMP * sizeof *t->char_id);
    if (!t->vocab || !t->char_id) goto oom;
    for (uint32_t i = 0; i <= t->vmask; i++) t->vocab[i].id = -1;
    memset(t->char_id, 0xff, N_BMP * sizeof *t->char_id);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (size_t i = 0; i < n; i++) {
        const char *sp = t->arena + ve[i].off;
        uint32_t len = ve[i].len;
        int32_t id = ve[i].id;
        vocab_put(t, ve[i].off, len, id);
        if (id > *max_id) *max_id = id;
        size_t used;
        if (len > 0 && len < 4 && utf8_valid_at((const uint8_t *)sp, len, &used) == len) t->char_id[utf8_cp((const uint8_t *)sp, len)] = id;
        static const char hex[] = "0123456789ABCDEF";
        if (len == 6 && memcmp(sp, "<0x", 3) == 0 && sp[5] == '>' && sp[3] && sp[4] && strchr(hex, sp[3]) && strchr(hex, sp[4]))
            t->byte_id[(strchr(hex, sp[3]) - hex) * 16 + (strchr(hex, sp[4]) - hex)] = id;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, err_cap, "out of memory");
out:
    free(arena.p); free(ve);
    return rc;
}

/* model.merges ["a b", ...] or [["a", "b"], ...]: rank = position; the merged piece must be in
 * the vocab (as the crate requires). */
static int load_merges(struct hf_bpe *t, const char *p, const char *e, char *err, size_t err_cap)
{
    struct sbuf a = {0}, b = {0};
    struct mtmp { int32_t a, b, n; } *mt = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    p = skip_ws(p + 1, e);                                            /* past '[' */
    while (p < e && *p != ']') {
        a.n = 0; b.n = 0;
        size_t an, bn;
        if (*p == '"') {
            if (!(p = json_string(p, e, &a))) { snprintf(err, err_cap, "merge %zu: malformed JSON string", n); goto out; }
            char *sp = memchr(a.p, ' ', a.n);
            if (!sp || memchr(sp + 1, ' ', a.n - (size_t)(sp + 1 - a.p))) {
                snprintf(err, err_cap, "merge %zu '%.*s' is not two pieces separated by one space", n, (int)a.n, a.p); goto out;
            }
            an = (size_t)(sp - a.p); bn = a.n - an - 1;
            memmove(sp, sp + 1, bn);                                  /* a.p = "ab": a then b */
        } else if (*p == '[') {
            p = skip_ws(p + 1, e);
            if (!(p = json_string(p, e, &a))) goto bad;
            p = skip_ws(p, e);
            if (p >= e || *p != ',') goto bad;
            p = skip_ws(p + 1, e);
            if (!(p = json_string(p, e, &b))) goto bad;
            p = skip_ws(p, e);
            if (p >= e || *p != ']') goto bad;
            p++;
            an = a.n; bn = b.n;
            if (sbuf_put(&a, b.p, b.n)) goto oom;
        } else goto bad;
        int32_t ia = vocab_get(t, a.p, an), ib = vocab_get(t, a.p + an, bn), inew = vocab_get(t, a.p, an + bn);
        if (ia < 0 || ib < 0) {
            snprintf(err, err_cap, "merge %zu: piece '%.*s' is not in the vocab", n, (int)(ia < 0 ? an : bn), ia < 0 ? a.p : a.p + an);
            goto out;
        }
        if (inew < 0) { snprintf(err, err_cap, "merge %zu: merged piece '%.*s' is not in the vocab", n, (int)(an + bn), a.p); goto out; }
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            struct mtmp *nm = realloc(mt, cap * sizeof *nm);
            if (!nm) goto oom;
            mt = nm;
        }
        mt[n++] = (struct mtmp){ ia, ib, inew };
        p = skip_ws(p, e);
        if (p < e && *p == ',') p = skip_ws(p + 1, e);
    }
    t->mmask = pow2_at_least((uint64_t)n * 3 / 2 + 16) - 1;
    t->merges = malloc(((size_t)t->mmask + 1) * sizeof *t->merges);
    if (!t->merges) goto oom;
    for (uint32_t i = 0; i <= t->mmask; i++) t->merges[i].key = UINT64_MAX;
    for (size_t i = 0; i < n; i++) merge_put(t, mt[i].a, mt[i].b, (uint32_t)i, mt[i].n);  /* later duplicates win */
    rc = 0;
    goto out;
bad:
    snprintf(err, err_cap, "merge %zu is neither \"a b\" nor [a, b]", n);
    goto out;
oom:
    snprintf(err, err_cap, "out of memory");
out:
    free(a.p); free(b.p); free(mt);
    return rc;
}

/* model: BPE with no dropout, no subword prefix/suffix; its flags, vocab, unk and merges. */
static int load_model(struct hf_bpe *t, const cJSON *root, const struct ranges *r, int32_t *max_id, char *err,
                      size_t err_cap)
{
    const cJSON *model = proto_json_get(root, "model");
    const cJSON *vocab = proto_json_get(model, "vocab"), *merges = proto_json_get(model, "merges");
    const char *mtype = NULL, *csp = NULL, *eows = NULL, *unk = NULL;
    double dropout = 0;
    proto_json_str(model, "type", &mtype);
    proto_json_num(model, "dropout", &dropout);
    proto_json_str(model, "continuing_subword_prefix", &csp);
    proto_json_str(model, "end_of_word_suffix", &eows);
    proto_json_str(model, "unk_token", &unk);
    if (!cJSON_IsObject(model)) FAIL("no 'model' object (not a tokenizer.json?)");
    if (mtype && strcmp(mtype, "BPE") != 0) FAIL("model type '%s' not supported (only BPE)", mtype);
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges) || !r->vocab[0]) FAIL("model has no BPE 'vocab' object and 'merges' array");
    if (dropout > 0) FAIL("BPE dropout %g is not supported (encoding would be random)", dropout);
    if ((csp && *csp) || (eows && *eows)) FAIL("continuing_subword_prefix / end_of_word_suffix are not supported");
    proto_json_bool(model, "byte_fallback", &t->byte_fallback);
    proto_json_bool(model, "fuse_unk", &t->fuse_unk);
    proto_json_bool(model, "ignore_merges", &t->ignore_merges);
    if (load_vocab(t, r->vocab[0], r->vocab[1], max_id, err, err_cap)) return -1;
    if (unk) {
        t->unk_id = vocab_get(t, unk, strlen(unk));
        if (t->unk_id < 0) FAIL("unk_token '%s' is not in the vocab", unk);
    }
    return load_merges(t, r->merges[0], r->merges[1], err, err_cap);
fail:
    return -1;
}

/* added_tokens (after the normalizer: normalized ones are matched in their normalized form). */
static int load_added(struct hf_bpe *t, const cJSON *root, int32_t *max_id, char *err, size_t err_cap)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, proto_json_get(root, "added_tokens")) {
        const char *c = NULL;
        long long id;
        bool single = false, ls = false, rs = false, normalized = false;
        if (proto_json_str(a, "content", &c) != 1) FAIL("added token without content/id");
        int r = proto_json_int(a, "id", 0, INT32_MAX, &id);   /* a token id: a cast of 1e122 to int is UB */
        if (r == 0) FAIL("added token without content/id");
        if (r < 0) FAIL("added token '%.60s': %s", c, proto_detail());
        if (!*c) continue;
        proto_json_bool(a, "single_word", &single);
        proto_json_bool(a, "lstrip", &ls);
        proto_json_bool(a, "rstrip", &rs);
        proto_json_bool(a, "normalized", &normalized);
        if (single) FAIL("added token '%s': single_word is not supported", c);
        if ((int32_t)id > *max_id) *max_id = (int32_t)id;
        if (normalized) {
            size_t nn;
            const char *ns = normalize(t, c, strlen(c), &nn);
            if (!ns || added_push(&t->normed, ns, nn, (int32_t)id, ls, rs)) FAIL("out of memory");
        } else if (added_push(&t->raw, c, strlen(c), (int32_t)id, ls, rs)) FAIL("out of memory");
    }
    if (added_set_build(&t->raw) || added_set_build(&t->normed)) FAIL("out of memory");
    return 0;
fail:
    return -1;
}

struct hf_bpe *hf_bpe_load(const char *path, char *err, size_t err_cap)
{
    struct hf_bpe *t = calloc(1, sizeof *t);
    cJSON *root = NULL;
    char *text = NULL, *rest = NULL;
    struct sbuf key = {0};
    size_t len = 0;
    if (!t) { snprintf(err, err_cap, "out of memory"); return NULL; }
    t->unk_id = -1; t->bos_id = -1;

    FILE *f = fopen(path, "rb");
    if (!f) FAIL("%s", strerror(errno));
    if (fseek(f, 0, SEEK_END) == 0) { long l = ftell(f); if (l > 0) len = (size_t)l; rewind(f); }
    text = malloc(len + 1);
    rest = malloc(len + 1);
    if (!text || !rest) { fclose(f); FAIL("out of memory"); }
    size_t got = fread(text, 1, len, f);
    bool rerr = ferror(f);
    fclose(f);
    if (rerr || got != len) FAIL("read failed");
    text[len] = 0;

    /* find model.vocab and model.merges; parse the rest with them blanked to {} and [] */
    struct ranges r = {0};
    memcpy(rest, text, len + 1);
    if (walk_object(text, text + len, &r, &key) && r.vocab[0] && r.merges[0] && *r.vocab[0] == '{' && *r.merges[0] == '[') {
        for (int k = 0; k < 2; k++) {
            const char **rg = k ? r.merges : r.vocab;
            char *b = rest + (rg[0] - text);
            size_t n = (size_t)(rg[1] - rg[0]);
            memset(b + 1, ' ', n - 2);
        }
    } else r.vocab[0] = r.merges[0] = NULL;
    root = cJSON_ParseWithLength(rest, len);
    if (!root) FAIL("not valid JSON (near byte %td)", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - rest : (ptrdiff_t)0);
    free(rest); rest = NULL;

    int32_t max_id = -1;
    if (load_model(t, root, &r, &max_id, err, err_cap)) goto fail;   /* the ranges point into text */
    free(text); text = NULL;
    if (add_norm(t, proto_json_get(root, "normalizer"), err, err_cap)) goto fail;
    if (load_added(t, root, &max_id, err, err_cap)) goto fail;
    if (set_pretok(t, proto_json_get(root, "pre_tokenizer"), err, err_cap)) goto fail;
    t->n_vocab = max_id + 1;
    t->bos_id = find_bos(root, t);
    set_word_split(t);
    cJSON_Delete(root);
    free(key.p);
    return t;
fail:
    free(text); free(rest); free(key.p);
    cJSON_Delete(root);
    hf_bpe_free(t);
    return NULL;
}
