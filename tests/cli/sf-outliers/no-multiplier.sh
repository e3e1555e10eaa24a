sf-outliers --estimate 10 < /dev/null
