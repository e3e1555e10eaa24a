sf-forward --model m --hook blocks.0.hook_resid_post --out-dtype i32 < /dev/null > /dev/null
