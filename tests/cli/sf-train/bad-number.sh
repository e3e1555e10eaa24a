sf-train -o sae --l1 abc < /dev/null
