sf-forward --model nowhere --hook blocks.0.hook_resid_post < /dev/null > /dev/null
