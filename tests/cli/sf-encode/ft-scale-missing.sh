"$PY" "$SF_ROOT/tests/sfstream.py" sae s '{"cfg": {"finetuning_scaling_factor": true}}' && "$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack | sf-encode --sae s > /dev/null
