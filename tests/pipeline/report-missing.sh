#!/bin/bash
# sf-report: a study with no loss keys, no "transfer", no "similarity" and no provenance still
# renders (exit 0) what it has, with a note for each missing part; a bad file among good ones fails.
source "$SF_ROOT/tests/lib.sh"
command -v xmllint >/dev/null || skip "xmllint missing (libxml2-utils)"
D="$SF_ROOT/tests/data/report"
sf-report "$D/missing.json" -o rep.html || die "sf-report failed on a JSON with missing blocks"
for n in 'No &quot;similarity&quot; block' 'No &quot;transfer&quot; block' 'No provenance in' 'undetermined: missing CE delta'; do
  grep -q "$n" rep.html || die "note '$n' missing"
done
for id in plot-1-base-act-hist plot-1-base-density-hist plot-1-base-norm-hist plot-1-finetune-density-hist \
          plot-1-transfer-density-scatter plot-1-transfer-density-parallel; do
  grep -q "id=\"$id\"" rep.html || die "$id missing"
done
for id in plot-1-sim-cos-hist plot-1-transfer-act-sim; do
  grep -q "id=\"$id\"" rep.html && die "$id drawn without its block"
done
# the CE rows are em dashes (missing), L0 is printed
grep -q '<tr><td>CE clean (nats)</td><td>—</td><td>—</td></tr>' rep.html || die "missing CE not shown as a dash"
"$PY" -c "
import json,sys; d=json.load(open('$D/missing.json')); print('<td>%.4f</td>' % d['base']['l0'])" > l0.txt
grep -qF "$(cat l0.txt)" rep.html || die "L0 $(cat l0.txt) missing"
n=0; while read -r s; do n=$((n+1)); done < <(grep -c '<svg' rep.html)
printf '{"tokens": 1,\n "base": {"l0": nan}}\n' > bad.json
sf-report "$D/transfer.json" bad.json -o x.html 2> err.txt; rc=$?
[ $rc = 1 ] || die "bad JSON among good: exit $rc, expected 1"
grep -qx 'sf-report: error: bad.json:2: not a valid JSON object' err.txt || die "message: $(cat err.txt)"
[ -e x.html ] && die "an output was written despite the error"
echo OK
