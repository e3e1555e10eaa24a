sf-tokenize --help > h.txt && grep -q "^Examples:" h.txt && grep -q "Exit codes" h.txt && grep -q "U+FFFD" h.txt && grep -q -- "--max-tokens" h.txt
