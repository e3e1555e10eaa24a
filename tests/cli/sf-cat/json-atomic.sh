# -o FILE for JSON lines is whole or nothing: a truncated input (exit 3) leaves an existing FILE
# byte for byte and no temp file; a complete one replaces it; --head counts as complete.
source "$SF_ROOT/tests/lib.sh"
mkframes 3 | sf-cat --pack > s.bin
head -c $(($(wc -c < s.bin) - 3)) s.bin > cut.bin
echo "old contents" > out.json
sf-cat -i cut.bin -o out.json 2> err.txt; rc=$?
[ $rc = 3 ] || die "truncated input: exit $rc: $(cat err.txt)"
[ "$(cat out.json)" = "old contents" ] || die "out.json changed by a failed run"
[ "$(ls -A | grep -c tmp)" = 0 ] || die "a temp file was left: $(ls -A)"
sf-cat -i cut.bin -o new.json 2> /dev/null; [ ! -e new.json ] || die "new.json made by a failed run"
sf-cat -i s.bin -o out.json || die "complete input failed"
[ "$(wc -l < out.json)" = 5 ] || die "out.json: $(wc -l < out.json) lines, want 5"
sf-cat -i s.bin --head 1 -o head.json && [ "$(wc -l < head.json)" = 2 ] || die "--head 1: $(cat head.json)"
ln -s out.json link.json; sf-cat -i s.bin --summary -o link.json && [ -L link.json ] && grep -q '^end' out.json || die "a symlink is written through"
echo done
