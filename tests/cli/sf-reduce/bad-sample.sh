sf-reduce --sample 0
