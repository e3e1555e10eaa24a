sf-report --help | grep -c 'plot-S-transfer-density-scatter\|Examples:\|Exit codes\|exit codes'
