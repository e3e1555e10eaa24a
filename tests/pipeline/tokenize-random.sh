#!/usr/bin/env bash
# Differential test on 300 random texts (fixed seed): mixtures of ASCII words, runs of spaces,
# tabs and newlines, digits, CJK, emoji, accents, literal special-token strings and invalid UTF-8
# bytes. References as in tokenize-hard.sh: python3-sentencepiece for the .model files, the naive
# Python BPE (HF rules) for Mistral's and Gemma's tokenizer.json.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py sentencepiece
T="$SF_FIXTURES/tokenizers"
mkdir -p r
"$PY" - <<'PY' || die "writing texts"
import random
rng = random.Random(20261124)
parts = ["the", "The", "cat", "a", "running", "tokenizer", " ", "  ", "     ", "\t", "\n", "\n\n", "\r\n",
         "0", "42", "3.14", "1999", "日本", "語", "中文", "한국어", "😊", "👨\u200d👩\u200d👧", "🇫🇷", "é", "ß", "Ω",
         "naïve", "<s>", "</s>", "<unk>", "<bos>", "<eos>", "<pad>", "<mask>", "▁", "_", "(", ")", "{", "}", "'", '"',
         "def", "return", "->", "==", "#", "...", "!?", "\u00a0", "\u200b", "\ufeff", "\ufffd", "𝔘𝔫𝔦"]
bad = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\x80", b"\xc0\xaf", b"\xf8\x88"]
for i in range(300):
    out = b""
    for _ in range(rng.randint(0, 14)):
        if rng.random() < 0.06:
            out += rng.choice(bad)
        else:
            out += rng.choice(parts).encode()
    open("r/%03d" % i, "wb").write(out)
PY
files=(r/*)
for tok in tok512/tokenizer.model mistral-v0.1/tokenizer.model mistral-v0.1/tokenizer.json gemma-v1/tokenizer.json; do
  sf-tokenize --tokenizer "$T/$tok" --format text --dump-ids "${files[@]}" > got.txt || die "sf-tokenize $tok failed"
  "$PY" - "$T/$tok" "${files[@]}" <<'PY' || die "$tok differs from its reference"
import json, sys
path, files = sys.argv[1], sys.argv[2:]
got = [json.loads(l) for l in open("got.txt")]
assert len(got) == len(files), (len(got), len(files))
if path.endswith(".model"):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=path)
    encode = lambda b: sp.encode(b)
else:
    tj = json.load(open(path))
    vocab = tj["model"]["vocab"]
    rank = {tuple(m.split(" ") if isinstance(m, str) else m): i for i, m in enumerate(tj["model"]["merges"])}
    added = [(a["content"], a["id"]) for a in tj["added_tokens"]]
    norm = tj["normalizer"]
    steps = norm["normalizers"] if norm["type"] == "Sequence" else [norm]
    def normalize(s):
        for st in steps:
            s = (st["prepend"] + s if s else s) if st["type"] == "Prepend" else s.replace(st["pattern"]["String"], st["content"])
        return s
    def bpe(word):
        syms = [x for c in word for x in ([c] if c in vocab else ["<0x%02X>" % b for b in c.encode()])]
        while True:
            cand = [(rank[(syms[i], syms[i + 1])], i) for i in range(len(syms) - 1) if (syms[i], syms[i + 1]) in rank]
            if not cand:
                return [vocab[s] for s in syms]
            _, i = min(cand)
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
    def encode(b):
        text, out, i, start = b.decode("utf-8", errors="replace"), [], 0, 0
        segs = []
        while i < len(text):
            m = max((a for a in added if text.startswith(a[0], i)), key=lambda a: len(a[0]), default=None)
            if m:
                segs += [text[start:i], m[1]]; i += len(m[0]); start = i
            else:
                i += 1
        segs.append(text[start:])
        for s in segs:
            out += [s] if isinstance(s, int) else (bpe(normalize(s)) if s else [])
        return out
bad = 0
for f, g in zip(files, got):
    want = encode(open(f, "rb").read())
    if want != g:
        bad += 1
        if bad <= 3:
            print("MISMATCH", path, f, repr(open(f, "rb").read()), "\n  want", want, "\n  got ", g)
print(path.split("/tokenizers/")[-1], len(files) - bad, "/", len(files), "random texts equal")
sys.exit(1 if bad else 0)
PY
done
