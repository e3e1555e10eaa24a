#!/usr/bin/env bash
# sf-reduce --plan/--shard and --merge of shards (issue 13), on small synthetic streams: shards
# merged in any order equal one pass over the whole stream; every wrong merge exits 1 with one
# line naming what is wrong (a missing shard, one given twice, an overlap, a gap, another plan,
# other settings, mixed shard counts, an unsharded part, a shard whose streams miss rows).
source "$SF_ROOT/tests/lib.sh"
need_py numpy
"$PY" - <<'PYEOF' || exit 1
import hashlib, json, subprocess
import numpy as np
import sfstream as sf
rng = np.random.default_rng(13)
D, S, CTX, R, NF = 8, 24, 6, 2, 6          # 6 frames of 2 rows, the last one of 1: 11 rows
ROWS = [R] * (NF - 1) + [1]
def frames(shift):
    out = []
    for rows in ROWS:
        n = rows * CTX
        X = (rng.normal(shift, 1, (n, D)) + np.arange(D)).astype(np.float32)
        Y = (X + rng.normal(0, 0.2, (n, D))).astype(np.float32)
        F = np.where(rng.random((n, S)) < 0.3, rng.exponential(1, (n, S)), 0).astype(np.float32)
        keep = (rng.random(n) > 0.1).astype(np.uint8)
        out.append([rng.integers(0, 50, (rows, CTX)), X.reshape(rows, CTX, D), Y.reshape(rows, CTX, D), keep.reshape(rows, CTX), F.reshape(rows, CTX, S)])
    return out
base, ft = frames(0.0), frames(0.5)
for i in range(NF): ft[i][0] = base[i][0]
def write(fr, lo, hi, path, thr=7.5):
    sf.pack(sf.stream([sf.acts_frame(s - lo, *fr[s]) for s in range(lo, hi)], hook=sf.HOOK, outlier_threshold=thr), path)
def plan(path, **over):
    s = {"hook": sf.HOOK, "ctx": CTX, "rows": R, "frames": NF, "total_rows": sum(ROWS), "outlier_rule": "relative",
         "outlier_multiplier": "2", "outlier_norm_scalar": "1.25", "tokens": sum(ROWS) * CTX}
    s.update(over)
    h = hashlib.sha256(json.dumps(s, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    json.dump({"saeflow_plan": 1, "plan_hash": h, "settings": s}, open(path, "w"))
    return h
for who, fr in (("b", base), ("f", ft)):
    write(fr, 0, NF, f"{who}-all.sf")
    for k, (lo, hi) in enumerate([(0, 2), (2, 4), (4, 6)]): write(fr, lo, hi, f"{who}-{k}.sf")
    for k, (lo, hi) in enumerate([(0, 3), (3, 6)]): write(fr, lo, hi, f"{who}-{k}of2.sf")
    write(fr, 2, 4, f"{who}-1-thr.sf", thr=9.0)
plan("plan.json"); plan("plan-m3.json", outlier_multiplier="3"); plan("plan-tok.json", tokens=60)

def red(args, out, rc=0):
    p = subprocess.run(["sf-reduce", *args, "-o", out], capture_output=True, text=True)
    assert p.returncode == rc, (args, p.returncode, p.stderr)
    return p.stderr
red(["--base", "b-all.sf", "--finetune", "f-all.sf"], "whole.json")
for k in range(3): red(["--plan", "plan.json", "--shard", f"{k}/3", "--base", f"b-{k}.sf", "--finetune", f"f-{k}.sf"], f"p{k}.json")
for k in range(2): red(["--plan", "plan.json", "--shard", f"{k}/2", "--base", f"b-{k}of2.sf", "--finetune", f"f-{k}of2.sf"], f"q{k}.json")
red(["--plan", "plan-m3.json", "--shard", "1/3", "--base", "b-1.sf", "--finetune", "f-1.sf"], "m3-1.json")
red(["--plan", "plan-tok.json", "--shard", "1/3", "--base", "b-1.sf", "--finetune", "f-1.sf"], "tok-1.json")
red(["--base", "b-1.sf", "--finetune", "f-1.sf"], "plain-1.json")
red(["--base", "b-1-thr.sf", "--finetune", "f-1-thr.sf"], "thr-1.json")
def forged(src, dst, **kv):
    d = json.load(open(src)); d["partial"]["shard"].update(kv); json.dump(d, open(dst, "w"))
forged("p1.json", "p1-overlap.json", row_start=3)
forged("p1.json", "p1-gap.json", row_end=7)
forged("p1.json", "p1-hash.json", plan_hash="0" * 64)

c = sf.Checker()
whole = json.load(open("whole.json"))
def same(path, what):
    m = json.load(open(path))
    for k in ("cos_by_row", "l2_by_row", "cos_by_position"):
        c.close(np.array(m["similarity"][k]), np.array(whole["similarity"][k]), f"{what}: similarity.{k}", rtol=1e-12)
    for blk in ("base", "finetune"):
        for k in ("l0", "explained_variance", "r2_pooled", "outliers", "mse"):
            c.close(m[blk][k], whole[blk][k], f"{what}: {blk}.{k}", rtol=1e-12)
    c.eq(m["tokens"], whole["tokens"], f"{what}: tokens")
red(["--merge", "p0.json", "p1.json", "p2.json"], "m.json"); same("m.json", "3 shards")
red(["--merge", "p2.json", "p0.json", "p1.json"], "m.json"); same("m.json", "3 shards out of order")
red(["--merge", "--plan", "plan.json", "p1.json", "p2.json", "p0.json"], "m.json"); same("m.json", "3 shards, --plan")
red(["--merge", "q1.json", "q0.json"], "m.json"); same("m.json", "2 shards")
c.eq(json.load(open("m.json"))["provenance"]["plan"]["shards"], 2, "provenance.plan.shards")
c.eq(json.load(open("p1.json"))["partial"]["shard"]["row_start"], 4, "shard 1/3 starts at row 4")
c.eq(json.load(open("p2.json"))["partial"]["shard"]["row_end"], 11, "shard 2/3 ends at row 11")

E = "sf-reduce: error: "
cases = [
    (["p0.json", "p2.json"], E + "--merge: mismatch: missing shard 1/3"),
    (["p0.json", "p1.json"], E + "--merge: mismatch: missing shard 2/3"),
    (["p0.json", "p1.json", "p1.json", "p2.json"], E + "--merge: mismatch: shard 1/3 given twice (p1.json and p1.json)"),
    (["p0.json", "p1-overlap.json", "p2.json"], E + "--merge: mismatch: shard 1/3 (rows 3:8) overlaps shard 0/3 (rows 0:4)"),
    (["p0.json", "p1-gap.json", "p2.json"], E + "--merge: mismatch: gap: rows 7:8 are in no shard (before shard 2/3)"),
    (["p0.json", "p1-hash.json", "p2.json"], E + "p1-hash.json: mismatch: shard 1/3 is of plan 000000000000, the first shard is of plan %s (mixed plans)"
        % json.load(open("plan.json"))["plan_hash"][:12]),
    (["p0.json", "m3-1.json", "p2.json"], E + 'm3-1.json: mismatch: shard 1/3 has settings.outlier_multiplier = "3", the first shard has "2" (mixed settings)'),
    (["--plan", "plan.json", "p0.json", "tok-1.json", "p2.json"], E + "tok-1.json: mismatch: shard 1/3 has settings.tokens = 60, plan.json has 66 (mixed settings)"),
    (["p0.json", "q1.json"], E + "q1.json: mismatch: shard 1/2, the first shard has 3 shards (mixed shard counts)"),
    (["p0.json", "plain-1.json", "p2.json"], E + "plain-1.json: mismatch: not a shard of a study plan (no partial.shard), the other parts are"),
    (["--plan", "plan.json", "plain-1.json"], E + "plain-1.json: mismatch: not a shard of a study plan (no partial.shard)"),
    (["whole.json", "thr-1.json"], E + "thr-1.json: mismatch: partial: outlier_threshold 9, earlier parts had 7.5"),
]
for args, want in cases:
    got = red(["--merge", *args], "bad.json", rc=1)
    c.eq(got, want + "\n", "merge " + " ".join(args))
c.eq(red(["--plan", "plan.json", "--shard", "0/3", "--base", "b-0of2.sf", "--finetune", "f-0of2.sf"], "bad.json", rc=1),
     E + "finish: mismatch: shard 0/3: the streams had 6 rows, the plan's rows 0:4 are 4\n", "a shard with the wrong rows")
c.eq(red(["--plan", "plan.json", "--shard", "0/7", "--base", "b-0.sf", "--finetune", "f-0.sf"], "bad.json", rc=1),
     E + "plan.json: invalid argument: --shard 0/7: the plan has only 6 frames\n", "more shards than frames")
c.done()
PYEOF
