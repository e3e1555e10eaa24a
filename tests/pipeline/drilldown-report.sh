#!/usr/bin/env bash
# sf-report's features section (issue 16 drill-down) from sf-reduce's "features" block: synthetic
# paired streams (12 features, 2 frames of 2 x 10 tokens) -> sf-reduce --feature-cards 2 --features
# 4 -> sf-report. Checks: the section, its index table and one card per JSON card
# (id="feature-card-1-ID"), each card's figures, both models' contexts with one token span per
# window token (the activation as a subscript where it fired, the kept token outlined), ids as
# #ID without a tokenizer; with --tokenizer (the stories260k SentencePiece model, when the
# fixtures are there) the pieces decoded instead. Also: --top-k 0 gives cards without contexts.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'EOF' || exit 1
import json, os, re, subprocess
from html.parser import HTMLParser
import numpy as np
import sfstream as sf
rng = np.random.default_rng(16)
S, ROWS, CTX = 12, 2, 10
N = 2 * ROWS * CTX
Fb = np.zeros((N, S), np.float32); Ff = np.zeros((N, S), np.float32)
for j in range(S):                                            # 3 fires each: density 0.075, regular
    i = rng.choice(N, 3, replace=False); Fb[i, j] = rng.uniform(0.1, 3, 3)
    i2 = i if j % 2 else rng.choice(N, 3, replace=False)      # odd: same tokens (transfers), even: not
    Ff[i2, j] = rng.uniform(0.1, 3, 3)
Ff[:, 2] = 0                                                  # dead in the finetune only
tok = rng.integers(3, 500, (2, ROWS, CTX))
def frames(F):
    return [sf.acts_frame(s, tok[s], feats=F[s*20:(s+1)*20].reshape(ROWS, CTX, S), hook="blocks.2.hook_resid_post") for s in range(2)]
sf.pack(sf.stream(frames(Fb), model="base"), "b.sf"); sf.pack(sf.stream(frames(Ff), model="ft"), "f.sf")
c = sf.Checker()
class Cards(HTMLParser):
    def __init__(s):
        super().__init__(); s.ids = {}; s.stack = []; s.cur = None; s.spans = 0; s.subs = 0; s.at = 0; s.text = []
    def handle_starttag(s, t, a):
        a = dict(a)
        if t == "article" and a.get("id", "").startswith("feature-card-"): s.cur = a["id"]; s.ids[s.cur] = {"tk": 0, "sub": 0, "at": 0}
        if s.cur and t == "span" and "tk" in a.get("class", "").split(): s.ids[s.cur]["tk"] += 1; s.ids[s.cur]["at"] += "at" in a["class"].split()
        if s.cur and t == "sub": s.ids[s.cur]["sub"] += 1
    def handle_endtag(s, t):
        if t == "article": s.cur = None
def report(extra, name):
    subprocess.run(["sf-reduce", "--base", "b.sf", "--finetune", "f.sf", "--feature-cards", "2", "--features", "4", "-o", name + ".json"] + extra, check=True)
    subprocess.run(["sf-report", name + ".json", "-o", name + ".html"], check=True)
    return json.load(open(name + ".json")), open(name + ".html").read()
doc, html = report([], "plain")
cards = doc["features"]["cards"]
c.eq(sorted(set(r for cd in cards for r in cd["roles"])), ["asked", "best", "dead_only_finetune", "worst"], "roles of the carded features")
c.eq('id="features-1"' in html and 'id="features-table-1"' in html, True, "features section and its index table")
p = Cards(); p.feed(html)
c.eq(sorted(p.ids), sorted(f"feature-card-1-{cd['id']}" for cd in cards), "one card per JSON card, id feature-card-1-ID")
for cd in cards:
    k = p.ids.get(f"feature-card-1-{cd['id']}", {"tk": 0, "sub": 0, "at": 0})
    want_tk = sum(len(x["tokens"]) for m in ("base", "finetune") for x in cd[m]["contexts"])
    want_sub = sum(sum(a > 0 for a in x["acts"]) for m in ("base", "finetune") for x in cd[m]["contexts"])
    c.eq((k["tk"], k["sub"], k["at"]), (want_tk, want_sub, sum(len(cd[m]["contexts"]) for m in ("base", "finetune"))),
         f"feature {cd['id']}: a span per window token, the activation where it fired, the kept token outlined")
c.eq(f"#{tok[0][0][0]}" in html or any(f"#{t}" in html for t in tok.reshape(-1)), True, "no tokenizer: ids shown as #ID")
c.eq("shown as ids (no tokenizer)" in html, True, "the section says the ids are not decoded")
d0, h0 = report(["--top-k", "0"], "off")
c.eq([len(cd["base"]["contexts"]) for cd in d0["features"]["cards"]], [0] * len(d0["features"]["cards"]), "--top-k 0: cards without contexts")
c.eq("no activation kept" in h0, True, "--top-k 0: the cards say so")
fx = os.environ.get("SF_FIXTURES", "")
if fx and os.path.isdir(f"{fx}/models/stories260k"):
    dt, ht = report(["--tokenizer", f"{fx}/models/stories260k/tokenizer.model"], "tok")
    pieces = dt["features"]["pieces"]
    used = {t for cd in dt["features"]["cards"] for m in ("base", "finetune") for x in cd[m]["contexts"] for t in x["tokens"]}
    c.eq(sorted(used - {int(k) for k in pieces}), [], "--tokenizer: every card token has a piece")
    c.eq("decoded with the base tokenizer" in ht, True, "--tokenizer: the section says so")
    c.eq(re.search(r'class="tk[^"]*"[^>]*>#\d', ht) is None, True, "--tokenizer: no #ID left in the contexts")
c.done()
EOF
