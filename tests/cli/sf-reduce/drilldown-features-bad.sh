sf-reduce --features 1,,2
