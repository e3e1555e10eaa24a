sf-report --bogus x.json
