# a pair with 5% finetune outliers and its warning: the warning at the top (escaped), the verdict
# "undetermined" with the reason though every figure would say "transfers"
echo '{"base":{"ce_delta":0.1,"outlier_fraction":0.002},"finetune":{"ce_delta":0.11,"outlier_fraction":0.05,"r2_pooled":0.9},"transfer":{"density_pearson":0.95,"activation_similarity":{"mean":0.95}},"warnings":[{"code":"outlier_fraction_high","message":"finetune: 5.00% <outliers>"}]}' |
  sf-report | grep -o '<li class="warn".*</li>\|id="verdict-1">.*</b>'
