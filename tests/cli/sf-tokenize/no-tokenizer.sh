printf "{\"text\": \"a\"}\n" > x.jsonl
sf-tokenize x.jsonl
