# issue 15: an SAE with a NaN weight encoded to nnz 0 with exit 0; the loader now refuses
# non-finite weights, naming the tensor and the first bad index
"$PY" "$SF_ROOT/tests/sfstream.py" sae s && "$PY" - <<'PY'
import sfstream as sf
t = sf.read_safetensors("s/sae_weights.safetensors")
t["W_enc"][3, 5] = float("nan")
t["b_enc"][7] = float("inf")
sf.write_safetensors("s/sae_weights.safetensors", t)
PY
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null
