sf-train -o sae --bogus < /dev/null
