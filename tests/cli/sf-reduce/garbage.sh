echo 'this is not a stream' | sf-reduce
