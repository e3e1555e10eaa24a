sf-compare --help | grep -q "^Examples:" && sf-compare --help | grep -q "Exit codes" && sf-compare --help | grep -q -- "--finetune ENDPOINT"
