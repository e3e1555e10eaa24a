printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
sf-tokenize --tokenizer tok.json --ctx 0 -o out.bin
