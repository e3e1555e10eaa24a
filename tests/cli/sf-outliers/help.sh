sf-outliers --help | grep -q "^examples:" && sf-outliers --help | grep -q "Exit codes" && sf-outliers --help | grep -q -- "--estimate N"
