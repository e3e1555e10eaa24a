# more than 1% outliers: a warning with the numbers (the output is still written, exit 0);
# under 1% (a threshold no token reaches): no warning
"$PY" "$SF_ROOT/tests/sfstream.py" acts '{}' | sf-cat --pack > a.sf
sf-outliers --max-norm 0.5 < a.sf | sf-cat --check
sf-outliers --max-norm 1e9 < a.sf | sf-cat --check
