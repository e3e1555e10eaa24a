printf "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n" > c.jsonl; sf-mkmodel -o m --corpus c.jsonl
