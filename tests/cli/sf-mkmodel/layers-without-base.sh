sf-mkmodel -o m --perturb-layers 1
