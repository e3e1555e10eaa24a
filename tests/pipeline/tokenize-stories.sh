#!/usr/bin/env bash
# sf-tokenize on data/stories.jsonl with the stories260k model directory (tok512 .model), ctx 64,
# BOS on == reference/stories260k.json: stream_rows_0_9 (the first 10 rows, with mid-row BOS at
# row 4 pos 34 and row 9 pos 19) and `tokens` (= stream rows 0, 4, 5, 9); and the whole file
# gives the README's 13,676 rows of 64 (the header's total_rows and the end frame agree; that run
# uses --threads 2).
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F="$SF_FIXTURES"
sf-tokenize --tokenizer "$F/models/stories260k" --ctx 64 --rows 3 --max-tokens 640 "$F/data/stories.jsonl" | sf-cat > head.jsonl \
  || die "sf-tokenize (10 rows) failed"
sf-tokenize --tokenizer "$F/models/stories260k" --ctx 64 --rows 64 --threads 2 "$F/data/stories.jsonl" | sf-cat --summary > all.txt \
  || die "sf-tokenize (all) failed"
"$PY" - "$F/reference/stories260k.json" <<'PY' || die "rows differ from the reference"
import json, sys
ref = json.load(open(sys.argv[1]))
frames = [json.loads(l) for l in open("head.jsonl")]
hdr, end = frames[0], frames[-1]
assert hdr["kind"] == "header" and end["kind"] == "end", (hdr["kind"], end["kind"])
m = hdr["meta"]
assert m["ctx"] == 64 and m["bos"] is True and m["bos_id"] == 1 and m["total_rows"] == 10, m
rows = []
for f in frames[1:-1]:
    t = f["tokens"]; r, c = t["shape"]
    assert t["dtype"] == "i32" and c == 64 and r <= 3, t["shape"]
    rows += [t["data"][i * c:(i + 1) * c] for i in range(r)]
assert [len(f["tokens"]["data"]) // 64 for f in frames[1:-1]] == [3, 3, 3, 1]
assert end["frames"] == 4 and end["rows"] == 10, end
assert rows == ref["stream_rows_0_9"], "stream_rows_0_9 differ"
assert [rows[i] for i in ref["row_indices_in_stream"]] == ref["tokens"], "fixed batch differs"
summ = open("all.txt").read().split("\n")
last = [l for l in summ if l.startswith("end")][0]
assert "rows=13676" in last, last
print("stream_rows_0_9 equal; 13676 rows of 64 in all")
PY
sf-tokenize --tokenizer "$F/models/stories260k" --ctx 64 --rows 64 "$F/data/stories.jsonl" | sf-cat | head -1 | grep -q '"total_rows":13676' \
  || die "header total_rows is not 13676"
