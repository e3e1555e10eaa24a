sf-forward --model m --hook blocks.1.attn < /dev/null > /dev/null
