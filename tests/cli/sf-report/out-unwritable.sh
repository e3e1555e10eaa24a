echo '{"tokens": 1}' > a.json
sf-report a.json -o nowhere/out.html
