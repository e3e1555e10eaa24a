sf-reduce --merge
