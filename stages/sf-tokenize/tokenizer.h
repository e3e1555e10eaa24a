/* tokenizer.h - sf-tokenize's two tokenizer back ends, behind one small interface.
 *
 *   hf-bpe.c     Hugging Face tokenizer.json, model type BPE (our own C implementation of the
 *                `tokenizers` crate's pipeline: added tokens cut out first, normalizers, Metaspace
 *                pre-tokenizer, BPE merges by rank, byte fallback, unk)
 *   spm-shim.cc  SentencePiece tokenizer.model through Debian's libsentencepiece
 *
 * Neither back end prints or exits: failures return NULL / -1 with a message in err.
 * Ids never include BOS/EOS (add_special_tokens=false; SentencePiece encode() defaults).
 */
#ifndef SF_TOKENIZE_TOKENIZER_H
#define SF_TOKENIZE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A grow-only vector of token ids. */
struct ids { int32_t *v; size_t n, cap; };
int ids_push(struct ids *a, int32_t id);          /* 0, or -1 out of memory */
int ids_reserve(struct ids *a, size_t cap);
void ids_destroy(struct ids *a);

/* ---- Hugging Face tokenizer.json (BPE) ---- */
struct hf_bpe;
struct hf_bpe *hf_bpe_load(const char *path, char *err, size_t err_cap);
/* Appends the ids of text[0..len) to out. Invalid UTF-8 is first decoded the way the reference
 * tools do (one U+FFFD per maximal invalid subsequence, WHATWG / Python errors="replace").
 * Returns 0, or -1 (out of memory). */
int hf_bpe_encode(struct hf_bpe *t, const char *text, size_t len, struct ids *out);
/* A copy for another thread: shares t's read-only tables, has its own scratch. Free it (with
 * hf_bpe_free) before t. */
struct hf_bpe *hf_bpe_worker(const struct hf_bpe *t);
int hf_bpe_bos_id(const struct hf_bpe *t);        /* -1 when the file names none */
int hf_bpe_vocab_size(const struct hf_bpe *t);
void hf_bpe_free(struct hf_bpe *t);

/* ---- SentencePiece tokenizer.model ---- */
struct spm;
struct spm *spm_load(const char *path, char *err, size_t err_cap);
/* Appends the ids of text[0..len) (raw bytes: SentencePiece maps each invalid UTF-8 byte to
 * U+FFFD itself). Returns 0, or -1 with a message in err. */
int spm_encode(struct spm *t, const char *text, size_t len, struct ids *out, char *err, size_t err_cap);
/* A handle for another thread sharing t's model (SentencePiece's Encode is const); free it
 * with spm_free before t. */
struct spm *spm_worker(struct spm *t);
int spm_bos_id(const struct spm *t);              /* -1 when the model has none */
int spm_vocab_size(const struct spm *t);
void spm_free(struct spm *t);

#ifdef __cplusplus
}
#endif
#endif
