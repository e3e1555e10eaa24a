sf-encode --sae x --bogus < /dev/null
