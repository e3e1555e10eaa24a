sf-reduce < /dev/null
