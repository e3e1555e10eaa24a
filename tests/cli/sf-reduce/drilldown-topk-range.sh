sf-reduce --top-k 65
