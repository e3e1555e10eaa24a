sf-encode --help | grep -q "^examples:" && sf-encode --help | grep -q "Exit codes" && sf-encode --help | grep -q -- "--splice"
