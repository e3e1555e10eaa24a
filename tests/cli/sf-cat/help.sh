sf-cat --help | grep -q "^Examples:" && sf-cat --help | grep -q "Exit codes"
