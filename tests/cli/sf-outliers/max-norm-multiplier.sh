sf-outliers --max-norm 3 --multiplier 2 < /dev/null
