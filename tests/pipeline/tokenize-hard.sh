#!/usr/bin/env bash
# sf-tokenize on hard texts (CJK, emoji, ZWJ sequences, code, long runs of spaces/newlines/tabs,
# invalid UTF-8, literal special-token strings, long words) against independent references:
#  - tokenizer.model (tok512, Mistral): python3-sentencepiece's encode() on the same bytes;
#  - tokenizer.json (Mistral, Gemma, two Metaspace variants of Mistral): a naive Python BPE written here from the HF `tokenizers`
#    rules (added tokens cut out first, per-segment normalizer, greedy lowest-rank-leftmost merges,
#    byte fallback), on the bytes decoded with errors="replace";
#  - and Mistral .json == Mistral .model wherever the text has no special-token string and is
#    valid UTF-8 (the fixtures README: they differ by design only there).
source "$SF_ROOT/tests/lib.sh"
need_fixtures
need_py sentencepiece
T="$SF_FIXTURES/tokenizers"
mkdir -p texts
"$PY" - <<'PY' || die "writing texts"
texts = [
    "日本語のテキストと中文混合，还有한국어도 있습니다。",
    "生活的真谛是 — 𠀋𡈽𡌛 rare CJK ext B",
    "👍🏽 family: 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 ✨ 🫠",
    "def f(x):\n\tif x:\n\t\treturn {'a': [1, 2]}  # comment\n    else:\n        pass\n",
    "int main(void) { printf(\"%d\\n\", a[i++] << 2); return 0; }",
    "a" + " " * 37 + "b",
    " " * 100,
    "  \n   \n\t\t x  ",
    "\n" * 20 + "end",
    " ",
    "",
    "x\r\ny\r\n",
    "with <s> in </s> and <unk> x",
    "<bos>Hello<eos> <pad><unk> world<bos>",
    "<s>",
    "Ünïcödé ñ ß ẞ ﬁ Ω ≈ ∑ e\u0301 \ufeffBOM \ufffd replacement",
    "مرحبا بالعالم नमस्ते Привет мир ελληνικά",
    "1234567890 3.14159e-10 0x1F 1,000,000",
    "a" * 300,
    "ab" * 150 + " " + "the " * 50,
    "\u200b\u200d zero width \u2028 line sep \u00a0 nbsp",
]
raw = [t.encode() for t in texts] + [
    b"abc\xff\xfe def",
    b"truncated \xe2\x82 euro",
    b"\xc3( bad continuation \xed\xa0\x80 surrogate \xf0\x9f\x98",
    b"\x80\x80\x80 lone continuations \xf8\x88\x80\x80\x80",
]
for i, b in enumerate(raw):
    open("texts/%02d" % i, "wb").write(b)
PY
files=(texts/*)

# 1. tokenizer.model vs python3-sentencepiece
for tok in tok512/tokenizer.model mistral-v0.1/tokenizer.model; do
  sf-tokenize --tokenizer "$T/$tok" --format text --dump-ids --threads 1 "${files[@]}" > got.txt || die "sf-tokenize $tok failed"
  sf-tokenize --tokenizer "$T/$tok" --format text --dump-ids --threads 3 "${files[@]}" > got3.txt || die "sf-tokenize $tok --threads 3 failed"
  cmp -s got.txt got3.txt || die "$tok: --threads 3 gives other ids than one thread"
  "$PY" - "$T/$tok" "${files[@]}" <<'PY' || die "$tok differs from python3-sentencepiece"
import json, sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
got = [json.loads(l) for l in open("got.txt")]
assert len(got) == len(sys.argv) - 2, (len(got), len(sys.argv) - 2)
bad = 0
for f, g in zip(sys.argv[2:], got):
    want = sp.encode(open(f, "rb").read())
    if want != g:
        bad += 1
        print("MISMATCH", sys.argv[1], f, "\n  want", want, "\n  got ", g)
sys.exit(1 if bad else 0)
PY
  echo "ok $tok: ${#files[@]} texts equal python3-sentencepiece"
done

# Metaspace variants of the Mistral tokenizer.json (no normalizer; the pre-tokenizer adds the
# prefix): "first" without split is what newer HF Llama/Mistral conversions write (legacy=false);
# the old format (add_prefix_space, split on every ▁) is what older files have. ("first" differs
# from the .model on text that starts with a space: Metaspace adds no prefix before a "▁".)
"$PY" - "$T/mistral-v0.1/tokenizer.json" <<'PY' || die "writing Metaspace variants"
import json, sys
tj = json.load(open(sys.argv[1]))
tj["normalizer"] = None
tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
json.dump(tj, open("meta-first.json", "w"))
tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
json.dump(tj, open("meta-old.json", "w"))
PY
# 2. tokenizer.json vs a naive Python BPE; 3. Mistral .json vs .model where they must agree
for tok in "$T/mistral-v0.1/tokenizer.json" "$T/gemma-v1/tokenizer.json" meta-first.json meta-old.json; do
  sf-tokenize --tokenizer "$tok" --format text --dump-ids --threads 1 "${files[@]}" > got.txt || die "sf-tokenize $tok failed"
  sf-tokenize --tokenizer "$tok" --format text --dump-ids --threads 3 "${files[@]}" > got3.txt || die "sf-tokenize $tok --threads 3 failed"
  cmp -s got.txt got3.txt || die "$tok: --threads 3 gives other ids than one thread"
  "$PY" - "$tok" "$T/mistral-v0.1/tokenizer.model" "${files[@]}" <<'PY' || die "$tok differs from the naive BPE"
import json, sys
tj = json.load(open(sys.argv[1]))
model = tj["model"]
vocab = model["vocab"]
rank = {}
for i, m in enumerate(model["merges"]):
    a, b = m.split(" ") if isinstance(m, str) else m
    rank[(a, b)] = i
added = [(a["content"], a["id"]) for a in tj["added_tokens"]]
assert all(not a.get("normalized") for a in tj["added_tokens"])
pre = tj["pre_tokenizer"]
if pre:
    import re
    rep = pre["replacement"]
    scheme = pre.get("prepend_scheme") or ("always" if pre.get("add_prefix_space") else "never")
    split = pre.get("split", True)
norm = tj["normalizer"]
steps = norm["normalizers"] if norm and norm["type"] == "Sequence" else ([norm] if norm else [])

def normalize(s):
    for st in steps:
        if st["type"] == "Prepend":
            s = st["prepend"] + s if s else s
        elif st["type"] == "Replace":
            s = s.replace(st["pattern"]["String"], st["content"])
        else:
            raise SystemExit("normalizer " + st["type"])
    return s

def bpe(word):
    syms = []
    for ch in word:
        if ch in vocab:
            syms.append(ch)
        else:
            syms += ["<0x%02X>" % b for b in ch.encode()]
    while True:
        best = None
        for i in range(len(syms) - 1):
            r = rank.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return [vocab[s] for s in syms]
        i = best[1]
        syms[i:i + 2] = [syms[i] + syms[i + 1]]

def words(seg, first):
    if not pre:
        return [seg]
    s = seg.replace(" ", rep)
    if not s.startswith(rep) and (scheme == "always" or (scheme == "first" and first)):
        s = rep + s
    return [w for w in re.split("(?=%s)" % rep, s) if w] if split else [s]

def encode(text):
    out, i, start = [], 0, 0
    pieces = []
    while i < len(text):
        m = max((a for a in added if text.startswith(a[0], i)), key=lambda a: len(a[0]), default=None)
        if m:
            pieces += [text[start:i], m[1]]
            i += len(m[0]); start = i
        else:
            i += 1
    pieces.append(text[start:])
    for k, p in enumerate(pieces):
        if isinstance(p, int):
            out.append(p)
        elif p:
            for w in words(normalize(p), k == 0):
                out += bpe(w)
    return out

got = [json.loads(l) for l in open("got.txt")]
files = sys.argv[3:]
assert len(got) == len(files)
bad = 0
for f, g in zip(files, got):
    want = encode(open(f, "rb").read().decode("utf-8", errors="replace"))
    if want != g:
        bad += 1
        print("MISMATCH", sys.argv[1], f, "\n  want", want, "\n  got ", g)
if "mistral-v0.1/tokenizer.json" in sys.argv[1]:
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
    for f, g in zip(files, got):
        b = open(f, "rb").read()
        try:
            t = b.decode()
        except UnicodeDecodeError:
            continue
        if any(a[0] in t for a in added):
            continue
        if sp.encode(b) != g:
            bad += 1
            print("MISTRAL .json != .model", f, "\n  model", sp.encode(b), "\n  json ", g)
sys.exit(1 if bad else 0)
PY
  echo "ok $tok: ${#files[@]} texts equal the naive BPE"
done
echo "all hard texts agree"
