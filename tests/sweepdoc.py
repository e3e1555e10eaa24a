#!/usr/bin/env python3
"""tests/sweepdoc.py - assembles a sweep result document (proto/PROTOCOL.md §5 "Sweeps") from real
stage outputs, for the sf-report tests (pipelines/sweep.sh writes the real one).

  sweepdoc.py --profile MULTI.json --weights WDEV.json [--title T] STUDY_DIR... > result.json

MULTI.json: sf-compare | sf-reduce over two `sf-forward --hook all` streams (the profile);
WDEV.json: sf-reduce --weights-only (its weight_deviation is taken); each STUDY_DIR holds a
pipelines/transfer.sh result.json (its hook and SAE are read from it). Studies are put in network
order (by depth)."""
import argparse, json, os, re, sys


def depth(hook):
    m = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", hook or "")
    return None if not m else int(m.group(1)) + (m.group(2) == "post")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--title", default="sweep")
    ap.add_argument("studies", nargs="*")
    a = ap.parse_args()
    prof = json.load(open(a.profile))
    wdev = json.load(open(a.weights)).get("weight_deviation")
    studies = []
    for d in a.studies:
        res = json.load(open(os.path.join(d, "result.json")))
        studies.append({"hook": res.get("hook"), "depth": depth(res.get("hook")), "sae": res.get("sae"),
                        "dir": os.path.basename(os.path.normpath(d)), "result": res})
    studies.sort(key=lambda s: (s["depth"] if s["depth"] is not None else 1 << 30))
    doc = {"saeflow_sweep": 1, "saeflow": prof.get("saeflow"), "title": a.title,
           "base": "base", "finetune": "finetune", "tokens": prof.get("tokens"), "ctx": prof.get("ctx"),
           "hooks": [h.get("hook") for h in prof.get("hooks", [])], "profile": prof,
           "weight_deviation": wdev, "studies": studies, "forward_seconds": {"base": None, "finetune": None}}
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main()
