sf-encode --sae x --norm-scaling-factor abc < /dev/null
