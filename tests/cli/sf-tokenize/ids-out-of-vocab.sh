printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
printf '%s\n' '{"input_ids": [1, 2, 3, 4]}' > ids.jsonl
sf-tokenize --tokenizer tok.json --format ids --ctx 4 ids.jsonl -o out.bin
