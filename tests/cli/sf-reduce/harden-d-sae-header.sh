# issue 15: feats.d_sae must agree with the d_sae sf-encode put in the stream header
printf '{"sf":1,"kind":"header","meta":{"d_sae":24}}\n{"sf":1,"kind":"acts","seq":0,"hook":"h","tokens":{"dtype":"i32","shape":[1,1],"data":[1]},"feats":{"d_sae":1048576,"indptr":{"dtype":"u32","shape":[2],"data":[0,1]},"index":{"dtype":"u32","shape":[1],"data":[5]},"value":{"dtype":"f32","shape":[1],"data":[1]}}}\n{"sf":1,"kind":"end","frames":1,"rows":1}\n' | sf-cat --pack > s.sf
sf-reduce -i s.sf
