sf-mkmodel --help | grep -q "^examples:" && sf-mkmodel --help | grep -q "Exit codes" && sf-mkmodel --help | grep -q -- "--finetune-of DIR"
