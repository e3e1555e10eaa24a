"$PY" "$SF_ROOT/tests/sfstream.py" sae s && echo "not frames at all" | sf-encode --sae s > /dev/null
