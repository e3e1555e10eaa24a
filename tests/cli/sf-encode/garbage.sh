"$PY" "$SF_ROOT/tests/pipeline/encode-lib.py" sae s && echo "not frames at all" | sf-encode --sae s > /dev/null
