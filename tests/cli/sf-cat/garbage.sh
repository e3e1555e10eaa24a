printf 'hello world, this is not msgpack' | sf-cat --check
