// spm-shim.cc - extern "C" wrapper around sentencepiece::SentencePieceProcessor (Debian's
// libsentencepiece), so that the C code of sf-tokenize can encode with tokenizer.model files.
// Encoding is SentencePiece's own Encode() with the model's defaults: no BOS/EOS, the model's
// normalizer (dummy prefix, whitespace rules), byte fallback, raw bytes in (invalid UTF-8
// bytes become U+FFFD inside the library), control pieces such as <s> never matched in text.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include <sentencepiece_processor.h>
#include "tokenizer.h"

struct spm {
    sentencepiece::SentencePieceProcessor own;
    const sentencepiece::SentencePieceProcessor *sp = &own;   // a worker points at its owner's
    std::vector<int> buf;
};

extern "C" struct spm *spm_load(const char *path, char *err, size_t err_cap)
{
    spm *t = new (std::nothrow) spm();
    if (!t) { snprintf(err, err_cap, "out of memory"); return nullptr; }
    auto st = t->own.Load(path);
    if (!st.ok()) {
        snprintf(err, err_cap, "not a SentencePiece model: %s", st.ToString().c_str());
        delete t;
        return nullptr;
    }
    return t;
}

extern "C" int spm_encode(struct spm *t, const char *text, size_t len, struct ids *out,
                          char *err, size_t err_cap)
{
    try {
        t->buf.clear();
        auto st = t->sp->Encode(std::string_view(text, len), &t->buf);
        if (!st.ok()) { snprintf(err, err_cap, "sentencepiece: %s", st.ToString().c_str()); return -1; }
        if (ids_reserve(out, out->n + t->buf.size()) != 0) { snprintf(err, err_cap, "out of memory"); return -1; }
        for (int id : t->buf) out->v[out->n++] = id;
        return 0;
    } catch (const std::bad_alloc &) {
        snprintf(err, err_cap, "out of memory");
        return -1;
    }
}

extern "C" struct spm *spm_worker(struct spm *t)
{
    spm *w = new (std::nothrow) spm();
    if (w) w->sp = t->sp;
    return w;
}

extern "C" int spm_bos_id(const struct spm *t) { return t->sp->bos_id(); }
extern "C" int spm_vocab_size(const struct spm *t) { return t->sp->GetPieceSize(); }
extern "C" void spm_free(struct spm *t) { delete t; }
