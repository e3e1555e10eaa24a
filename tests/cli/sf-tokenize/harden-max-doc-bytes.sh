# --max-doc-bytes N: a document of N bytes passes, one of N+1 is refused naming its line;
# plain text (one document per file) stops reading at the limit; 0 = no limit.
printf '%s' '{"added_tokens":[{"id":0,"content":"<bos>","normalized":false}],"normalizer":null,"pre_tokenizer":null,"model":{"type":"BPE","vocab":{"<bos>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}' > tok.json
printf '%s\n' '{"text": "abababab"}' '{"text": "ababababa"}' > d.jsonl
head -1 d.jsonl | sf-tokenize --tokenizer tok.json --ctx 4 --format jsonl --max-doc-bytes 8 --dump-ids || echo "8 bytes refused"
sf-tokenize --tokenizer tok.json --ctx 4 --max-doc-bytes 0 --dump-ids d.jsonl || echo "no limit refused"
head -c 3000000 /dev/zero | tr '\0' a > t.txt
sf-tokenize --tokenizer tok.json --ctx 4 --max-doc-bytes 1000000 t.txt -o out.bin || echo "text: exit $?"
sf-tokenize --tokenizer tok.json --ctx 4 --max-doc-bytes 8 d.jsonl -o out.bin || echo "jsonl: exit $?"
