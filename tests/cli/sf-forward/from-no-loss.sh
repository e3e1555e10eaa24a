sf-forward --model m --from blocks.0.hook_resid_post < /dev/null > /dev/null
