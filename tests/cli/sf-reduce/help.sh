sf-reduce --help | grep -q "^Examples:" && sf-reduce --help | grep -q "Exit codes" && sf-reduce --help | grep -q -- "--merge" && sf-reduce --help | grep -q "nan_counts"
