printf "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, " > tokenizer.json
sf-tokenize --tokenizer tokenizer.json --format text -o out.bin /dev/null
