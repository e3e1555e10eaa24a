sf-reduce --features 16777216
