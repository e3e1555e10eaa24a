printf '{\n "tokens": 10,\n "rows": [1, 2,,\n}\n' > bad.json
sf-report bad.json -o out.html
