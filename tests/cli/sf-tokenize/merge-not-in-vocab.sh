printf "%s" "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}" > tokenizer.json
sf-tokenize --tokenizer tokenizer.json --no-bos --format text -o out.bin /dev/null
