sf-forward --model m < /dev/null > /dev/null
