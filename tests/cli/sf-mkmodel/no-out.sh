sf-mkmodel
