# issue 15: a tensor's memory was reserved before its data length was checked (shape
# [1048576,1048576,1] with empty data gave "out of memory" with no detail): the length is
# checked against prod(shape)*size first, and the message names the frame, the key, both sizes
printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"other","seq":0,"x":{"dtype":"f32","shape":[1048576,1048576,1],"data":[]}}\n{"sf":1,"kind":"end","frames":1,"rows":0}\n' | sf-cat --pack > big.sf
# (no ulimit -v under ASan: its shadow memory needs the address space)
([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 1000000; sf-cat --check -i big.sf)
