printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"end","frames":0,"rows":0}\n' | sf-cat --pack | sf-train -o sae
