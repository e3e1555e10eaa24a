printf "hello, not a model" > tokenizer.model
sf-tokenize --tokenizer . --format text -o out.bin /dev/null
