# issue 15: an SAE whose cfg.json is {} was applied to any hook unchecked. Without hook_name
# sf-encode now refuses unless --force-hook says so; d_in/d_sae then come from W_enc's shape
"$PY" "$SF_ROOT/tests/sfstream.py" sae s && echo '{}' > s/cfg.json
"$PY" "$SF_ROOT/tests/sfstream.py" acts | sf-cat --pack > a.sf
sf-encode --sae s -i a.sf > /dev/null; echo "rc $?"
sf-encode --sae s --force-hook -i a.sf | sf-cat --summary | sed -n 2p
