sf-outliers --max-norm 3 --estimate 10 --multiplier 2 < /dev/null
