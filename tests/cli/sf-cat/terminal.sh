script -qec "sf-cat --pack -i /dev/null" /dev/null > out.txt; rc=$?; cat out.txt >&2; exit $rc
