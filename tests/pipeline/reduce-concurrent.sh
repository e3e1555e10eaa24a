#!/usr/bin/env bash
# sf-reduce reads all its inputs concurrently (issue 14): the loss pair given after the acts pair
# on fifos, with their writer sending the loss streams first and the acts pair after (the order
# a split run across hosts may deliver them in), completes — before, sf-reduce opened the loss
# inputs only after the acts pair had ended, and this waited forever — and gives the same
# result as the same streams read from files. No spool file is left in TMPDIR.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F=$SF_FIXTURES; M=$F/models; SAE=$F/saes/stories260k-L2-relu
sf-tokenize --tokenizer "$M/stories260k" --ctx 128 --rows 4 --max-tokens 2048 -q "$F/data/stories.jsonl" -o tok.sf || die "tokenize"
for X in base:stories260k finetune:stories260k-ft-mild; do
  r=${X%%:*} m=${X#*:}
  sf-forward --model "$M/$m" --hook blocks.2.hook_resid_post -q -i tok.sf | sf-encode --sae "$SAE" --splice -q -o "acts-$r.sf" || die "acts $r"
  sf-forward --model "$M/$m" --from blocks.2.hook_resid_post --loss -q -i "acts-$r.sf" -o "loss-$r.sf" || die "loss $r"
done
sf-reduce --base acts-base.sf --finetune acts-finetune.sf --base loss-base.sf --finetune loss-finetune.sf -o files.json || die "sf-reduce on files"
mkfifo ab af lb lf
mkdir spool-tmp
( cat loss-base.sf > lb && cat loss-finetune.sf > lf && { cat acts-base.sf > ab & cat acts-finetune.sf > af; wait; } ) & writer=$!
TMPDIR=$PWD/spool-tmp timeout 60 sf-reduce --base ab --finetune af --base lb --finetune lf -o fifos.json; rc=$?
kill $writer 2>/dev/null; wait $writer 2>/dev/null
[ $rc = 0 ] || die "sf-reduce over fifos, loss streams first: exit $rc (124: it waited for the acts pair)"
[ -z "$(ls -A spool-tmp)" ] || die "spool files left: $(ls -R spool-tmp)"
"$PY" - <<'PY' || exit 1
import json, sys, sfstream
a, b = json.load(open("files.json")), json.load(open("fifos.json"))
n, worst, bad = sfstream.compare_docs(a, b, 0.0)
if "ce_clean" not in a["base"] or a["base"]["ce_clean"] is None: bad.append("no loss figures")
print(n, "numbers compared", *bad[:5])
sys.exit(1 if bad else 0)
PY
