sf-train < /dev/null
