# an added token's id must be a token id (found by fuzz-tokenizer-json: 4.4e122 was cast to int)
printf '{"added_tokens": [{"id": 4.4e122, "content": "<x>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}' > tokenizer.json
sf-tokenize --tokenizer tokenizer.json --format text -o out.bin /dev/null
