printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
printf '%s\n' '{"text": "abababababababab"}' '{"text": "ab"' > x.jsonl
# a stage that fails mid-stream: downstream of a pipe sees a truncated stream (exit 3) ...
sf-tokenize --tokenizer tok.json --ctx 2 --rows 1 --stream x.jsonl 2>tok.err | sf-cat --summary >/dev/null; rc=$?
cat tok.err >&2
# ... and a file output is not left behind at all (whole or nothing, PROTOCOL.md §1)
sf-tokenize --tokenizer tok.json --ctx 2 --rows 1 --stream x.jsonl -o out.bin 2>/dev/null
ls out.bin* 2>/dev/null && echo "a partial out.bin was left behind" >&2
exit $rc
