# a NUL byte where a JSON value should be (found by fuzz-tokenizer-json: the value skipper made no
# progress and looped forever): one error line, at once
printf '{"added_tokens": [{"id": 0, "rstrip": f\000\000], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}' > tokenizer.json
timeout 10 sf-tokenize --tokenizer tokenizer.json --format text -o out.bin /dev/null
