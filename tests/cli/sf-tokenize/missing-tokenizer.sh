printf "{\"text\": \"a\"}\n" > x.jsonl
sf-tokenize --tokenizer nope.json x.jsonl -o out.bin
