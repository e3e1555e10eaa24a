echo "not frames" | sf-outliers --max-norm 3 > /dev/null
