sf-mkmodel -o m --finetune-of nowhere --perturb-layers 1
