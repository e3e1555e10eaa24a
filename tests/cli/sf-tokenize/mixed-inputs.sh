printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
printf '%s\n' '{"input_ids": [1, 2, 3, 0]}' > ids.jsonl
printf '%s\n' '{"text": "ab"}' > t.jsonl
sf-tokenize --tokenizer tok.json --ctx 4 ids.jsonl t.jsonl -o out.bin
