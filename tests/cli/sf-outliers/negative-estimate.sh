sf-outliers --estimate 0 --multiplier 2 < /dev/null
