sf-report nowhere.json -o out.html
