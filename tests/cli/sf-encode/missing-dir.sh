sf-encode --sae nowhere < /dev/null
