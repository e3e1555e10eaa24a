# issue 15: sf-reduce -o FILE is written whole or not at all (a temp file renamed over FILE); a
# fifo or a device is written directly. An old FILE survives a failed run byte for byte.
. "$SF_ROOT/tests/lib.sh"
mkframes 2 | sf-cat --pack -o s.sf
echo old > out.json
mkframes 2 | head -n 2 | sf-cat --pack | sf-reduce -o out.json 2> /dev/null; echo "truncated input: exit $? old kept: $(cat out.json)"
sf-reduce -i s.sf -o out.json && "$PY" -c 'import json; print("tokens", json.load(open("out.json"))["tokens"])'
ls | grep -c tmp || true
mkfifo f; (sf-reduce -i s.sf -o f &); "$PY" -c 'import json; print("fifo tokens", json.load(open("f"))["tokens"])'
