# issue 15: a 300-byte stream claiming feats.d_sae 2^26 must not size sf-reduce's accumulators
# (it took 24 GB): d_sae is bounded (2^24, said in --help) before anything is allocated
printf '{"sf":1,"kind":"header","meta":{}}\n{"sf":1,"kind":"acts","seq":0,"hook":"h","tokens":{"dtype":"i32","shape":[1,1],"data":[1]},"feats":{"d_sae":67108864,"indptr":{"dtype":"u32","shape":[2],"data":[0,1]},"index":{"dtype":"u32","shape":[1],"data":[5]},"value":{"dtype":"f32","shape":[1],"data":[1]}}}\n{"sf":1,"kind":"end","frames":1,"rows":1}\n' | sf-cat --pack > s.sf
# (no ulimit -v under ASan: its shadow memory needs the address space)
([ "${SF_ASAN:-0}" = 1 ] || ulimit -v 2000000; sf-reduce -i s.sf)
