#!/bin/bash
# sf-report's inline script in headless Chromium, on stories260k vs ft-code (relu SAE, 8,192
# tokens, transfer.sh: a features section; without the fixtures the test data's report, whose
# feature table part is then skipped). A copy of the report with a test script appended:
#   - a click on the feature table's "act. sim." header sorts its rows ascending (aria-sort), a
#     second click descending
#   - the range filter under the parallel coordinates: base from -3 shows exactly the lines whose
#     data-b >= -3 (counted here from the SVG source)
#   - hovering a bar of an overlay histogram shows its <title> in the tooltip
#   - printing (beforeprint) opens every folded <details>, afterprint folds them again
#   - no console message at all
# and the report without its script (the <script> element taken out; headless Chromium cannot dump
# a page with script disabled): every plot id, the contents and the tables are in the DOM, no
# script-made control. Skips without chromium outside CI.
source "$SF_ROOT/tests/lib.sh"
need_chromium
F=${SF_FIXTURES:-}
if [ -n "$F" ] && [ -d "$F/models/stories260k" ]; then
  "$SF_ROOT/pipelines/transfer.sh" --base "$F/models/stories260k" --finetune "$F/models/stories260k-ft-code" \
      --sae "$F/saes/stories260k-L2-relu" --data "$F/data/stories.jsonl" --tokens 8192 \
      --no-report --out study >/dev/null 2>&1 || die "transfer.sh failed"
  sf-report study/result.json -o rep.html || die "sf-report failed"
else
  sf-report "$SF_ROOT/tests/data/report/transfer.json" -o rep.html || die "sf-report failed"
fi
"$PY" - <<'PY' || die "making the test page failed"
h = open("rep.html").read()
t = r"""<script>(function(){var out={};
var tb=document.getElementById('features-table-1'),col=2;
function vals(){return Array.prototype.slice.call(tb.rows,1).map(function(r){return r.cells[col].textContent;});}
if(tb){out.before=vals();tb.rows[0].cells[col].click();out.asc=vals();out.sort1=tb.rows[0].cells[col].getAttribute('aria-sort');
tb.rows[0].cells[col].click();out.desc=vals();out.sort2=tb.rows[0].cells[col].getAttribute('aria-sort');}
var f=document.querySelector('.parf[data-for="plot-1-transfer-density-parallel"]');
if(f){var ins=f.querySelectorAll('input');out.inputs=ins.length;ins[0].value='-3';ins[0].dispatchEvent(new Event('input'));
out.shown=0;Array.prototype.forEach.call(document.querySelectorAll('#plot-1-transfer-density-parallel line[data-b]'),function(l){if(l.style.display!=='none')out.shown++;});
out.said=f.querySelector('output').textContent;}
var r=document.querySelector('#plot-1-overlay-act-hist rect > title').parentNode;
r.dispatchEvent(new MouseEvent('mousemove',{bubbles:true,clientX:100,clientY:100}));
out.tip=document.getElementById('sf-tip').textContent;out.title=r.querySelector('title').textContent;
out.shut0=document.querySelectorAll('details:not([open])').length;window.dispatchEvent(new Event('beforeprint'));
out.shutp=document.querySelectorAll('details:not([open])').length;window.dispatchEvent(new Event('afterprint'));
out.shut1=document.querySelectorAll('details:not([open])').length;
var p=document.createElement('pre');p.id='test-out';p.textContent=JSON.stringify(out);document.body.appendChild(p);})();</script>
"""
open("test.html", "w").write(h.replace("</body>", t + "</body>"))
PY
CHROME=(timeout 120 chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0)
"${CHROME[@]}" --dump-dom "file://$PWD/test.html" > dom.html 2> log.txt || die "chromium failed: $(tail -3 log.txt)"
"$PY" -c 'import re,sys; open("noscript.html","w").write(re.sub(r"<script>.*?</script>", "", open("rep.html").read(), flags=re.S))'
"${CHROME[@]}" --dump-dom "file://$PWD/noscript.html" > nsdom.html 2> log2.txt || die "chromium (no script) failed"
grep ':CONSOLE' log.txt log2.txt && die "console messages"
"$PY" - <<'PY' || exit 1
import html as H, json, re, sys
dom, src, nos = open("dom.html").read(), open("rep.html").read(), open("nsdom.html").read()
m = re.search(r'<pre id="test-out">(.*?)</pre>', dom, re.S)
if not m: sys.exit("FAIL: the test script did not run (no output in the DOM)")
o = json.loads(H.unescape(m.group(1)))
fail = []
def key(v):
    try: return (0, float(v))
    except ValueError: return (1, 0.0)
if "before" in o:
    nums = [float(v) for v in o["asc"] if key(v)[0] == 0]
    if sorted(o["before"], key=key) != o["asc"] or nums != sorted(nums) or o["sort1"] != "ascending": fail.append("sort ascending: %s" % o["asc"][:8])
    dn = [float(v) for v in o["desc"] if key(v)[0] == 0]
    if dn != sorted(dn, reverse=True) or o["sort2"] != "descending" or sorted(o["desc"]) != sorted(o["before"]): fail.append("sort descending: %s" % o["desc"][:8])
else: print("no features table (test data): sort not checked")
pc = re.search(r'<svg[^>]* id="plot-1-transfer-density-parallel".*?</svg>', src, re.S).group(0)
want = sum(1 for b in re.findall(r'data-b="([^"]+)"', pc) if float(b) >= -3)
if o.get("inputs") != 4 or o.get("shown") != want: fail.append("filter: %s inputs, %s lines shown, expected %d (%s)" % (o.get("inputs"), o.get("shown"), want, o.get("said")))
if not o["tip"] or o["tip"] != o["title"]: fail.append("tooltip %r, title %r" % (o["tip"], o["title"]))
if not (o["shut0"] > 0 and o["shutp"] == 0 and o["shut1"] == o["shut0"]):
    fail.append("print: %s folded sections, %s while printing, %s after" % (o["shut0"], o["shutp"], o["shut1"]))
ids = re.findall(r'<svg[^>]* id="([^"]+)"', src) + ["toc", "summary"] + re.findall(r'<table[^>]* id="([^"]+)"', src)
for name, d in (("after load", dom), ("without script", nos)):
    have = set(re.findall(r' id="([^"]+)"', d))
    if [i for i in ids if i not in have]: fail.append("%s: missing %s" % (name, [i for i in ids if i not in have][:5]))
if "<script" in nos or 'class="parf"' in nos or 'id="sf-tip"' in nos: fail.append("without script: script-made controls")
for f in fail: print("FAIL:", f)
if fail: sys.exit(1)
print("OK: sorted %d rows, filter %d of %d lines, tooltip %r" % (len(o.get("asc", [])), o["shown"], len(re.findall("data-b=", pc)), o["tip"]))
PY
