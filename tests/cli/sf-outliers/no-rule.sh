sf-outliers < /dev/null
