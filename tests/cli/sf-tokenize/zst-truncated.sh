printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
for i in 1 2 3 4 5 6 7 8; do printf '{"text": "abababababab"}\n'; done | zstd -q > x.jsonl.zst && head -c 20 x.jsonl.zst > cut.jsonl.zst
sf-tokenize --tokenizer tok.json cut.jsonl.zst -o out.bin
