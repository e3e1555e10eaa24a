touch r.json; sf-reduce --features-out r.json -i a.sf -o r.json
