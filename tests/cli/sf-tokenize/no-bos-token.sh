printf "%s" "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}}" > tokenizer.json
sf-tokenize --tokenizer tokenizer.json --format text -o out.bin /dev/null
