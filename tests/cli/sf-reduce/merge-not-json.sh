echo 'not json' > x.json
sf-reduce --merge x.json
