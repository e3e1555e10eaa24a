#!/usr/bin/env bash
# sf-tokenize ids == ../shared/fixtures/reference/tokenizers.json for all four tokenizers
# (tok512 .model, Mistral v0.1 .model and .json, Gemma v1 .json) and all its texts, fed as the
# exact bytes (utf8_hex). The reference's `disagreements` lists are all empty (the three
# tokenizer.json implementations agree, and Mistral .model == .json on these texts), so there is
# one expected answer per text. Also: the header's bos_id is the reference's, and a model
# directory resolves to tokenizer.json when it has one.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
REF="$SF_FIXTURES/reference/tokenizers.json"
T="$SF_FIXTURES/tokenizers"
mkdir -p texts
"$PY" - "$REF" <<'PY' || die "writing texts"
import json, sys
d = json.load(open(sys.argv[1]))
assert all(v == [] for v in d["disagreements"].values()), d["disagreements"]
for t in d["texts"]:
    open("texts/%03d" % t["id"], "wb").write(bytes.fromhex(t["utf8_hex"]))
PY
for tok in tok512/tokenizer.model mistral-v0.1/tokenizer.model mistral-v0.1/tokenizer.json gemma-v1/tokenizer.json; do
  sf-tokenize --tokenizer "$T/$tok" --format text --dump-ids texts/* > got.txt || die "sf-tokenize $tok failed"
  # BOS: a short text with --bos; the first row must start with the reference bos_id
  printf 'Hello world, this is a test of the tokenizer and its BOS.' > bos.txt
  sf-tokenize --tokenizer "$T/$tok" --format text --ctx 4 bos.txt | sf-cat > bos.jsonl || die "sf-tokenize $tok (frames) failed"
  "$PY" - "$REF" "$tok" <<'PY' || die "$tok differs from the reference"
import json, sys
d = json.load(open(sys.argv[1])); tok = sys.argv[2]
got = [json.loads(l) for l in open("got.txt")]
assert len(got) == len(d["texts"]), (len(got), len(d["texts"]))
bad = [t["name"] for t, g in zip(d["texts"], got) if t["ids"][tok] != g]
for t, g in zip(d["texts"], got):
    if t["ids"][tok] != g:
        print("MISMATCH", tok, t["name"], "\n  want", t["ids"][tok], "\n  got ", g)
frames = [json.loads(l) for l in open("bos.jsonl")]
bos = d["tokenizers"][tok]["bos_id"]
assert frames[0]["meta"]["bos_id"] == bos, (frames[0]["meta"], bos)
assert frames[1]["tokens"]["data"][0] == bos, frames[1]
print(tok, len(got) - len(bad), "/", len(got), "texts equal, bos_id", bos)
sys.exit(1 if bad else 0)
PY
done
# a model directory prefers tokenizer.json
sf-tokenize --tokenizer "$T/mistral-v0.1" --format text bos.txt --ctx 4 | sf-cat | head -1 | grep -q '"tokenizer":"[^"]*mistral-v0.1/tokenizer.json"' \
  || die "directory did not resolve to tokenizer.json"
echo "all reference ids equal"
