# a complete stream with no data frames: a valid document with zero tokens
printf '{"sf":1,"kind":"header","meta":{"model":"m"}}\n{"sf":1,"kind":"end","frames":0,"rows":0}\n' | sf-cat --pack | sf-reduce --no-partial | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["tokens"], d["rows"], "model" in d, d["provenance"]["inputs"][0]["header"]["model"])'
