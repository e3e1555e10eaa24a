sf-mkmodel -o m --dtype f16
