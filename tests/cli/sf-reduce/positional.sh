sf-reduce stream.sf
