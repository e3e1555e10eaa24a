sf-mkmodel -o m --corpus nowhere.jsonl
