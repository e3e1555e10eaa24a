# the card pieces from an HF tokenizer.json whose ids are out of range or not integers (4.4e122,
# -1, 5.5, 1e300): those entries are skipped, never cast (undefined behaviour, which the ASan +
# UBSan build of `make asan` would abort on); the valid ones are used
F=$SF_FIXTURES
sf-tokenize --tokenizer "$F/models/stories260k" --ctx 64 --rows 4 --max-tokens 1024 -q "$F/data/stories.jsonl" |
  sf-forward --model "$F/models/stories260k" --hook blocks.2.hook_resid_post -q |
  sf-encode --sae "$F/saes/stories260k-L2-relu" -q -o a.sf && cp a.sf b.sf || exit 1
printf '%s' '{"model":{"vocab":{"a":1,"huge":4.4e122,"neg":-1,"half":5.5}},"added_tokens":[{"id":1e300,"content":"big"},{"id":-3,"content":"minus"}]}' > tok.json
sf-reduce --tokenizer tok.json --base a.sf --finetune b.sf -o r.json &&
  "$PY" -c 'import json; f = json.load(open("r.json"))["features"]; print(f["tokenizer"], sorted(set(f["pieces"].values())))'
