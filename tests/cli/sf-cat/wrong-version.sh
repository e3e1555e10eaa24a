printf '%s\n' '{"sf":2,"kind":"header","meta":{}}' | sf-cat --pack | sf-cat --check
