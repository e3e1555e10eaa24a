sf-cat --head x
