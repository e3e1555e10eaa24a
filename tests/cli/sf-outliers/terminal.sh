script -qec "sf-outliers --max-norm 3 < /dev/null" /dev/null > out.txt; rc=$?; cat out.txt >&2; exit $rc
