sf-mkmodel -o m --finetune-of x
