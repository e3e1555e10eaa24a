sf-train -o sae --init-from x --k 4 < /dev/null
