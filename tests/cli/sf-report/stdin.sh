# a minimal single-model document on stdin: one "model" column, no similarity/transfer
echo '{"saeflow":"0.1.0","tokens":4,"model":{"l0":12.5,"dead_fraction":0.25}}' | sf-report | grep -o '<td>12.5000</td>\|<td>25.00%</td>\|No per-model\|study 1: model'
