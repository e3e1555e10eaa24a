printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' '{oops' | sf-cat --pack > /dev/null
