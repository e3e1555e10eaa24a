sf-reduce --features-out - -i a.sf
