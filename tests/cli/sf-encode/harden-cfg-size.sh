# issue 15: a JSON file (cfg.json, config.json, an index, a result to merge) over 1 GiB is refused before it is read
mkdir -p big && cp "$SF_FIXTURES/saes/stories260k-L2-relu/"* big/ && truncate -s 1100M big/cfg.json && sf-encode --sae big < /dev/null
