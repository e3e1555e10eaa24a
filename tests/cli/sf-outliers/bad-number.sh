sf-outliers --max-norm 3x < /dev/null
