sf-mkmodel -o m --d-model 64 --heads 5
