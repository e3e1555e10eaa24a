sf-outliers --bogus < /dev/null
