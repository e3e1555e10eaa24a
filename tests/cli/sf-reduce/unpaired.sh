sf-reduce --base a.sf
