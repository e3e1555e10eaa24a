/* reduce-gen - a synthetic acts+feats(+recon) stream for the sf-reduce benchmark:
 *   reduce-gen ENDPOINT TOKENS [D_MODEL D_SAE L0 CTX ROWS RECON SEED]
 * defaults 2048 16384 60 128 8 0 1: frames of ROWS x CTX tokens, activations ~ N(0, 1)-ish,
 * L0 distinct random features per token with values in (0, 4], recon = acts + noise when RECON=1.
 * A different SEED gives different data over the same tokens (a "finetune" stream). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto.h"

static uint64_t rng_next(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }
static float unif(uint64_t *s) { return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0)); }

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: reduce-gen ENDPOINT TOKENS [D_MODEL D_SAE L0 CTX ROWS RECON SEED]\n"); return 2; }
    uint64_t tokens = strtoull(argv[2], 0, 10);
    uint64_t d = argc > 3 ? strtoull(argv[3], 0, 10) : 2048, S = argc > 4 ? strtoull(argv[4], 0, 10) : 16384;
    uint64_t l0 = argc > 5 ? strtoull(argv[5], 0, 10) : 60, ctx = argc > 6 ? strtoull(argv[6], 0, 10) : 128;
    uint64_t rows = argc > 7 ? strtoull(argv[7], 0, 10) : 8;
    int recon = argc > 8 && atoi(argv[8]);
    uint64_t seed = argc > 9 ? strtoull(argv[9], 0, 10) : 1, st = 0x9e3779b97f4a7c15ULL * (seed + 1), tst = 12345;
    uint64_t n = rows * ctx, frames = (tokens + n - 1) / n;
    int err;
    struct proto_writer *w = proto_writer_open(argv[1], NULL, &err);
    if (!w) { fprintf(stderr, "reduce-gen: %s: %s %s\n", argv[1], proto_strerror(err), proto_detail()); return 1; }
    int32_t *tok = calloc(n, 4);                         /* (rows, ctx) */
    float *acts = proto_aligned_alloc(n * d * 4);        /* (rows, ctx, d) */
    float *rec = proto_aligned_alloc(n * d * 4);         /* (rows, ctx, d) */
    uint32_t *indptr = calloc(n + 1, 4), *index = calloc(n * l0, 4);   /* (n + 1), (n * l0) */
    float *value = calloc(n * l0, 4);                    /* (n * l0) */
    uint8_t *mark = calloc(S, 1);                        /* (S) */
    struct proto_meta m;
    proto_meta_init(&m, NULL, argc, argv);
    proto_meta_set_str(&m, "hook", "blocks.6.hook_resid_post");
    proto_meta_set_uint(&m, "d_model", d); proto_meta_set_uint(&m, "d_sae", S); proto_meta_set_uint(&m, "ctx", ctx);
    err = proto_writer_header(w, &m);
    proto_meta_destroy(&m);
    for (uint64_t fno = 0; fno < frames && !err; fno++) {
        for (uint64_t i = 0; i < n; i++) tok[i] = (int32_t)(rng_next(&tst) % 256000);
        for (uint64_t i = 0; i < n * d; i++) {
            acts[i] = unif(&st) + unif(&st) + unif(&st) - 1.5f;
            if (recon) rec[i] = acts[i] + 0.1f * (unif(&st) - 0.5f);
        }
        uint64_t e = 0;
        for (uint64_t t = 0; t < n; t++) {
            indptr[t] = (uint32_t)e;
            for (uint64_t k = 0; k < l0; k++) {
                uint32_t j;
                do j = (uint32_t)(rng_next(&st) % S); while (mark[j]);
                mark[j] = 1; index[e] = j; value[e] = 4.0f * unif(&st) + 1e-6f; e++;
            }
            for (uint64_t k = indptr[t]; k < e; k++) mark[index[k]] = 0;
        }
        indptr[n] = (uint32_t)e;
        struct proto_sparse sp = {.d_sae = (uint32_t)S, .n_tok = n, .nnz = e, .indptr = indptr, .index = index, .value = value};
        uint64_t s2[2] = {rows, ctx}, s3[3] = {rows, ctx, d};
        struct proto_frame f;
        proto_frame_init(&f, PROTO_KIND_ACTS);
        proto_frame_set_tensor(&f, "tokens", PROTO_I32, 2, s2, tok);
        proto_frame_set_str(&f, "hook", "blocks.6.hook_resid_post");
        proto_frame_set_tensor(&f, "acts", PROTO_F32, 3, s3, acts);
        if (recon) proto_frame_set_tensor(&f, "recon", PROTO_F32, 3, s3, rec);
        proto_frame_set_sparse(&f, "feats", &sp);
        err = proto_writer_put(w, &f);
    }
    int cerr = proto_writer_close(w, !err);
    free(tok); free(acts); free(rec); free(indptr); free(index); free(value); free(mark);
    if (err || cerr) { fprintf(stderr, "reduce-gen: %s %s\n", proto_strerror(err ? err : cerr), proto_detail()); return 1; }
    return 0;
}
