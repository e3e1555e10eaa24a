#!/usr/bin/env bash
# SAELens batching on hand-made inputs, expected rows written out by hand. A letters-only
# tokenizer.json (ids: <pad> 0, <eos> 1, <bos> 2, <unk> 3, a..j = 4..13, no merges) makes each
# document's ids obvious: "abc" -> [4 5 6].
source "$SF_ROOT/tests/lib.sh"
cat > tok.json <<'J'
{"version": "1.0", "added_tokens": [
  {"id": 0, "content": "<pad>", "normalized": false, "special": true},
  {"id": 1, "content": "<eos>", "normalized": false, "special": true},
  {"id": 2, "content": "<bos>", "normalized": false, "special": true},
  {"id": 3, "content": "<unk>", "normalized": false, "special": true}],
 "normalizer": null, "pre_tokenizer": null,
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
   "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
 "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false,
   "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "a": 4, "b": 5, "c": 6, "d": 7, "e": 8,
             "f": 9, "g": 10, "h": 11, "i": 12, "j": 13}, "merges": []}}
J
# rows CTX ARGS... < JSONL : prints the rows of the stream, one per line, then "frames=[shapes]"
rows() {
  local ctx=$1; shift
  sf-tokenize --tokenizer tok.json --format jsonl --ctx "$ctx" "$@" | sf-cat > out.jsonl || die "sf-tokenize $* failed"
  "$PY" -c '
import json
fr = [json.loads(l) for l in open("out.jsonl")]
assert fr[0]["kind"] == "header" and fr[-1]["kind"] == "end"
shapes = []
for f in fr[1:-1]:
    t = f["tokens"]; r, c = t["shape"]; shapes.append(r)
    for i in range(r): print(" ".join(map(str, t["data"][i*c:(i+1)*c])))
tr = fr[0]["meta"].get("total_rows")
print("frames=%s total_rows=%s end_rows=%d" % (shapes, tr, fr[-1]["rows"]))'
}
expect() { # name expected actual
  [ "$2" == "$3" ] || { printf 'FAIL %s\n--- expected\n%s\n--- got\n%s\n' "$1" "$2" "$3"; exit 1; }
  echo "ok $1"
}
docs='{"text": "abc"}
{"text": "de"}
{"text": "fghij"}
{"text": ""}
{"text": "a"}'

# --bos: "abc" fills row 0 after the row BOS; "de" starts a fresh row (row BOS only); "fghij"
# starts inside it, so a BOS separator takes the row's last place and the document continues on
# the next row after that row's BOS; "" is skipped; "a" gets a separator at row 3's last place;
# the final partial row [2 4] is dropped.
expect bos "2 4 5 6
2 7 8 2
2 9 10 11
2 12 13 2
frames=[4] total_rows=4 end_rows=4" "$(rows 4 <<< "$docs")"

# --no-bos: plain contiguous chunks 4 5 6 7 | 8 9 10 11 | (12 13 4 dropped)
expect no-bos "4 5 6 7
8 9 10 11
frames=[2] total_rows=2 end_rows=2" "$(rows 4 --no-bos <<< "$docs")"

# --rows 3: frames of 3 rows, the last one shorter
expect rows-per-frame "2 4 5 6
2 7 8 2
2 9 10 11
2 12 13 2
frames=[3, 1] total_rows=4 end_rows=4" "$(rows 4 --rows 3 <<< "$docs")"

# --skip-rows 1 --max-tokens 9: skip row 0, then floor(9/4) = 2 whole rows
expect skip-max "2 7 8 2
2 9 10 11
frames=[2] total_rows=2 end_rows=2" "$(rows 4 --skip-rows 1 --max-tokens 9 <<< "$docs")"

# a document that exactly fills a row, then one that starts a fresh row: no separator
expect exact-fill "2 4 5 6
2 7 8 9
frames=[2] total_rows=2 end_rows=2" "$(rows 4 <<< '{"text": "abc"}
{"text": "def"}')"

# a document that is its own BOS first (tokenizer.json cuts "<bos>" out as id 2): SAELens adds
# no separator before it; unknown characters fuse into one <unk> (3)
expect doc-starting-with-bos "2 4 2 5
2 6 7 2
2 8 3 9
frames=[3] total_rows=3 end_rows=3" "$(rows 4 <<< '{"text": "a"}
{"text": "<bos>b"}
{"text": "cd"}
{"text": "exyzf"}
{"text": "g"}')"

# a long document across several rows, ctx 3: each continuation row starts with BOS
expect long-doc "2 4 5
2 6 7
2 8 9
2 10 11
frames=[4] total_rows=4 end_rows=4" "$(rows 3 <<< '{"text": "abcdefghi"}')"

# plain text: --paragraphs splits at blank lines (whitespace-only lines count as blank)
printf 'ab\ncd\n\n  \nef\n\n\ng\n' > p.txt
sf-tokenize --tokenizer tok.json --paragraphs --dump-ids p.txt > para.txt || die "paragraphs failed"
# "ab\ncd" -> a b <unk> c d; "ef"; "g"
expect paragraphs "[4, 5, 3, 6, 7]
[8, 9]
[10]" "$(cat para.txt)"
# one document per file, files in order, stdin as -
printf 'ab' > one.txt; printf 'cd' > two.txt
expect files-in-order "[4, 5]
[6, 7]
[8]" "$(printf 'e' | sf-tokenize --tokenizer tok.json --format text --dump-ids one.txt two.txt -)"

# pre-tokenized rows pass through as they are (no BOS added), --bos or not
printf '%s\n' '{"input_ids": [5, 6, 7, 8]}' '{"input_ids": [9, 10, 11, 12]}' > ids.jsonl
expect ids-passthrough "5 6 7 8
9 10 11 12
frames=[2] total_rows=2 end_rows=2" "$(rows 4 --format ids < ids.jsonl)"
expect ids-autodetect "5 6 7 8
9 10 11 12
frames=[2] total_rows=2 end_rows=2" "$(sf-tokenize --tokenizer tok.json --ctx 4 ids.jsonl | sf-cat | "$PY" -c '
import json, sys
fr = [json.loads(l) for l in sys.stdin]
for f in fr[1:-1]:
    t = f["tokens"]; r, c = t["shape"]
    for i in range(r): print(" ".join(map(str, t["data"][i*c:(i+1)*c])))
print("frames=%s total_rows=%s end_rows=%d" % ([f["tokens"]["shape"][0] for f in fr[1:-1]], fr[0]["meta"]["total_rows"], fr[-1]["rows"]))')"

# --stream: header written at once, without total_rows
expect stream "2 4 5 6
2 7 8 2
2 9 10 11
2 12 13 2
frames=[4] total_rows=None end_rows=4" "$(rows 4 --stream <<< "$docs")"

# --bos-id overrides the tokenizer's BOS (here 13 = "j"); -i FILE is an input like a positional one
printf '%s\n' "$docs" > docs.jsonl
expect bos-id-and-i "13 4 5 6
13 7 8 13
13 9 10 11
13 12 13 13
frames=[4] total_rows=4 end_rows=4" "$(sf-tokenize --tokenizer tok.json --ctx 4 --bos-id 13 -i docs.jsonl | sf-cat | "$PY" -c '
import json, sys
fr = [json.loads(l) for l in sys.stdin]
assert fr[0]["meta"]["bos_id"] == 13
for f in fr[1:-1]:
    t = f["tokens"]; r, c = t["shape"]
    for i in range(r): print(" ".join(map(str, t["data"][i*c:(i+1)*c])))
print("frames=%s total_rows=%s end_rows=%d" % ([f["tokens"]["shape"][0] for f in fr[1:-1]], fr[0]["meta"]["total_rows"], fr[-1]["rows"]))')"
