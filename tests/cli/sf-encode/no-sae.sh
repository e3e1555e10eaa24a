sf-encode < /dev/null
