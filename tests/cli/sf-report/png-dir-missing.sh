echo '{"tokens": 1}' > a.json
sf-report a.json --png nowhere/plots -o out.html
