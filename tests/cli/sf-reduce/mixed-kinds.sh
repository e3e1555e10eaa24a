# one stream carrying acts (feats), loss and sim frames over the same 2 x 3 tokens: every block
# is filled and the tokens are counted once; values by hand
T='"tokens":{"dtype":"i32","shape":[2,3],"data":[1,2,3,4,5,6]}'
printf '%s\n' '{"sf":1,"kind":"header","meta":{}}' \
 '{"sf":1,"kind":"acts","seq":0,"hook":"h",'"$T"',"feats":{"d_sae":2,"indptr":{"dtype":"u32","shape":[7],"data":[0,1,1,2,2,2,3]},"index":{"dtype":"u32","shape":[3],"data":[0,0,1]},"value":{"dtype":"f32","shape":[3],"data":[1,2,4]}}}' \
 '{"sf":1,"kind":"loss","seq":1,'"$T"',"ce_clean":{"dtype":"f32","shape":[2,2],"data":[1,2,3,4]},"ce_spliced":{"dtype":"f32","shape":[2,2],"data":[2,3,4,5]},"ce_ablated":{"dtype":"f32","shape":[2,2],"data":[5,6,7,8]}}' \
 '{"sf":1,"kind":"sim","seq":2,'"$T"',"cos":{"dtype":"f32","shape":[2,3],"data":[1,0.5,0,1,0.5,0]},"l2":{"dtype":"f32","shape":[2,3],"data":[0,1,2,3,4,5]}}' \
 '{"sf":1,"kind":"end","frames":3,"rows":6}' | sf-cat --pack | sf-reduce | "$PY" -c '
import json,sys; d=json.load(sys.stdin); m=d["model"]; s=d["similarity"]
print(d["tokens"], d["rows"], d["ctx"], m["l0"], m["l1"], m["ce_clean"], m["ce_delta"], m["ce_recovered"], s["cos_mean"], s["l2_by_row"], s["cos_by_position"])'
