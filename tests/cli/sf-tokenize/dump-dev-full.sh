printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
printf '%s\n' '{"text": "abab"}' > x.jsonl
sf-tokenize --tokenizer tok.json --dump-ids x.jsonl -o /dev/full
