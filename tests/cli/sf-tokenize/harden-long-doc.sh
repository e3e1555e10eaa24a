# issue 15: one huge JSONL line is refused (exit 1, naming the line) instead of taking ~130
# bytes of memory per byte in the tokenizer: the default --max-doc-bytes is 4 MiB.
printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
{ printf '{"text": "ab"}\n{"text": "'; head -c 5000000 /dev/zero | tr '\0' a; printf '"}\n'; } > big.jsonl
sf-tokenize --tokenizer tok.json --ctx 4 big.jsonl -o out.bin
