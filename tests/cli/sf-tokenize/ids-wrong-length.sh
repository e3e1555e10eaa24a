printf '%s\n' '{"input_ids": [1, 2, 3, 0]}' '{"input_ids": [1, 2, 3]}' > ids.jsonl
sf-tokenize --format ids --ctx 4 ids.jsonl -o out.bin
