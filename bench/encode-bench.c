/* encode-bench - sf-encode's kernels on a synthetic SAE, without I/O: the encoder sgemm alone
 * (GFLOP/s, timed inside the frame's work) and the whole per-frame work (normalise, sgemm, activation + CSR, sparse decode)
 * in tokens/s. It includes stages/sf-encode.c, so it times exactly the stage's code.
 *
 *   encode-bench [d_in d_sae tokens act k reps]   defaults 4096 65536 4096 relu 64 1
 *
 * Synthetic weights: W_enc, W_dec uniform with variance 1/d_in resp. 1/d_sae, inputs uniform
 * with variance 1; relu uses b_enc = -3.1 so that about 1/1000 of the features fire (L0 ≈ 64 at
 * d_sae 65536), topk uses k. Prints key=value lines for bench/bench-encode.sh. */
#define SF_ENCODE_NO_MAIN
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../stages/sf-encode.c"
#include "sgemm-yardstick.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float uniform_pm(float a)   /* uniform in [-a, a) (xorshift64*) */
{
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
    return a * ((float)(r >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

static float *filled(size_t n, float sd)
{
    float *p = proto_aligned_alloc(n * sizeof(float));
    if (!p) { fprintf(stderr, "encode-bench: out of memory\n"); exit(1); }
    float a = sd * sqrtf(3.0f);
    for (size_t i = 0; i < n; i++) p[i] = uniform_pm(a);
    return p;
}

/* The sgemm-peak yardstick (best square 4096 product, all threads), measured next to the run so
 * that both see the same load on a shared machine. */
static double square_peak(void) { return sgemm_best_gflops(4096, 3); }

int main(int argc, char **argv)
{
    int d_in = argc > 1 ? atoi(argv[1]) : 4096, d_sae = argc > 2 ? atoi(argv[2]) : 65536;
    int64_t n_tok = argc > 3 ? atoll(argv[3]) : 4096;
    const char *act = argc > 4 ? argv[4] : "relu";
    int k = argc > 5 ? atoi(argv[5]) : 64, reps = argc > 6 ? atoi(argv[6]) : 1;
    if (d_in < 1 || d_sae < 1 || n_tok < 1 || k < 1 || reps < 1) { fprintf(stderr, "encode-bench: bad arguments\n"); return 2; }

    struct opts o = opts_default("encode-bench");
    o.splice = true;
    struct state st;
    memset(&st, 0, sizeof st);
    st.o = &o;
    struct proto_sae *s = &st.sae;
    snprintf(s->name, sizeof s->name, "synthetic");
    s->d_in = d_in; s->d_sae = d_sae; s->arch = PROTO_SAE_ARCH_STANDARD; s->apply_b_dec = true; s->norm = PROTO_SAE_NORM_NONE;
    s->act = strcmp(act, "topk") == 0 ? PROTO_SAE_ACT_TOPK : PROTO_SAE_ACT_RELU;
    s->k = k;
    s->W_enc = filled((size_t)d_in * d_sae, 1.0f / sqrtf((float)d_in));
    s->W_dec = filled((size_t)d_sae * d_in, 1.0f / sqrtf((float)d_sae));
    s->b_dec = filled((size_t)d_in, 0.0f);
    s->b_enc = filled((size_t)d_sae, 0.0f);
    for (int j = 0; j < d_sae; j++) s->b_enc[j] = s->act == PROTO_SAE_ACT_TOPK ? 0.0f : -3.1f;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    st.n_threads = nproc > MAX_THREADS ? MAX_THREADS : (int)nproc;
    for (int i = 0; i < st.n_threads; i++) {
        st.part[i].sae = s;
        if (s->act == PROTO_SAE_ACT_TOPK) {
            st.part[i].zrow = malloc((size_t)d_sae * sizeof(float));
            st.part[i].heap_idx = malloc((size_t)k * sizeof(int));
            st.part[i].heap_val = malloc((size_t)k * sizeof(float));
        }
    }
    float *x = filled((size_t)n_tok * d_in, 1.0f);   // (n_tok, d_in)
    float *recon = proto_aligned_alloc((size_t)n_tok * d_in * sizeof(float));

    /* warm up: one small frame (threads, buffers, page faults of the weights) */
    int err = encode_tokens(&st, x, n_tok < 64 ? n_tok : 64, recon);
    if (err) { fprintf(stderr, "encode-bench: %s\n", proto_strerror(err)); return 1; }

    /* the whole frame: prepare, sgemm, activation + CSR, sparse decode */
    double peak_before = square_peak();
    double best_total = 1e30, best_post = 1e30, best_in_sgemm = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = proto_now();
        st.t_prep = st.t_sgemm = st.t_post = 0;
        if ((err = encode_tokens(&st, x, n_tok, recon)) != 0) { fprintf(stderr, "encode-bench: %s\n", proto_strerror(err)); return 1; }
        double t = proto_now() - t0;
        if (t < best_total) best_total = t;
        if (st.t_post < best_post) best_post = st.t_post;
        if (st.t_sgemm < best_in_sgemm) best_in_sgemm = st.t_sgemm;
    }
    double peak_after = square_peak();
    double flop = 2.0 * (double)n_tok * d_in * d_sae;
    double l0 = (double)st.nnz_total / (double)n_tok;
    printf("d_in=%d d_sae=%d tokens=%lld act=%s k=%d threads=%d blas_threads=%d\n", d_in, d_sae,
           (long long)n_tok, proto_sae_act_name(s->act), s->act == PROTO_SAE_ACT_TOPK ? k : 0, st.n_threads,
           openblas_get_num_threads());
    printf("sgemm_seconds=%.4f sgemm_gflops=%.2f adjacent_peak_gflops=%.2f\n", best_in_sgemm,
           flop / best_in_sgemm / 1e9, peak_before > peak_after ? peak_before : peak_after);
    printf("total_seconds=%.4f tokens_per_s=%.1f l0=%.2f post_seconds=%.4f\n",
           best_total, (double)n_tok / best_total, l0, best_post);
    state_destroy(&st);
    free(x); free(recon);
    return 0;
}
