sf-reduce --context x
