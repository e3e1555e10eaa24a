echo '[1, 2]' > arr.json
sf-report arr.json -o out.html
