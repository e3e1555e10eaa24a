echo "hello world" | sf-train -o sae
