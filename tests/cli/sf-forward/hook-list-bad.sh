sf-forward --model m --hook blocks.0.hook_resid_post,blocks.1.attn < /dev/null > /dev/null
