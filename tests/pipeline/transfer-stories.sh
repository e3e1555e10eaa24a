#!/usr/bin/env bash
# pipelines/transfer.sh on the real stories260k family with the fixture ReLU SAE
# (blocks.2.hook_resid_post, ctx 128, BOS from its cfg.json), a small token budget:
#   - base vs ft-mild and base vs ft-code: ft-mild's global cosine > ft-code's, ft-code's
#     CE delta (spliced - clean) > ft-mild's; every SPEC section 4 key the inputs can give is
#     there; report.html is written (when sf-report is built)
#   - pipelines/similarity.sh (sf-compare) gives the study's similarity figures
#   - --keep-streams: re-reducing the saved .zst streams gives the same JSON (throughput and
#     provenance and timings aside)
source "$SF_ROOT/tests/lib.sh"
need_fixtures; need_py numpy
F=$SF_FIXTURES; M=$F/models; SAE=$F/saes/stories260k-L2-relu
for ft in mild code; do
  KEEP=(); [ $ft = mild ] && KEEP=(--keep-streams streams)
  "$SF_ROOT/pipelines/transfer.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-$ft" --sae "$SAE" \
      --data "$F/data/stories.jsonl" --tokens 8192 --outlier-multiplier 3 --ablate --out "out-$ft" \
      "${KEEP[@]}" || die "transfer.sh base vs ft-$ft failed"
  [ -s "out-$ft/result.json" ] || die "out-$ft/result.json missing"
  [ -s "out-$ft/report.html" ] || die "out-$ft/report.html missing"
done
for f in base.zst finetune.zst loss-base.zst loss-finetune.zst; do [ -s "streams/$f" ] || die "streams/$f missing"; done
"$SF_ROOT/pipelines/similarity.sh" --base "$M/stories260k" --finetune "$M/stories260k-ft-mild" \
    --hook blocks.2.hook_resid_post --data "$F/data/stories.jsonl" --tokens 8192 --ctx 128 --out sim.json ||
    die "similarity.sh failed"
sf-reduce --base streams/base.zst --finetune streams/finetune.zst --base streams/loss-base.zst \
    --finetune streams/loss-finetune.zst --base-model "$M/stories260k" --finetune-model "$M/stories260k-ft-mild" \
    --sae "$SAE" -o again.json || die "re-reduce of the saved streams failed"
"$PY" - <<'PY' || die "checks failed"
import json
mild, code, again = (json.load(open(p)) for p in ['out-mild/result.json', 'out-code/result.json', 'again.json'])
# SPEC section 4 keys
top = ['saeflow', 'tokens', 'rows', 'ctx', 'hook', 'sae', 'similarity', 'base', 'finetune', 'transfer', 'throughput']
sim = ['cos_mean', 'l2_mean', 'cos_by_position', 'l2_by_position', 'cos_by_row', 'l2_by_row', 'cos_hist', 'l2_hist']
per = ['l0', 'l1', 'ce_clean', 'ce_spliced', 'ce_ablated', 'ce_delta', 'ce_recovered', 'kl_spliced', 'kl_ablated',
       'r2_pooled', 'explained_variance', 'mse', 'cos_recon', 'l2_ratio', 'outliers', 'outlier_fraction',
       'dead_fraction', 'dead_count', 'log_density', 'density_hist', 'act_log10_hist', 'norm_hist']
tr = ['density_pearson', 'dead_only_base', 'dead_only_finetune', 'activation_error_dead_base',
      'activation_error_dead_finetune', 'regular_count', 'activation_similarity', 'logit_similarity',
      'unembed_frobenius_ratio', 'unembed_frobenius_error']
for name, r in [('mild', mild), ('code', code)]:
    miss = [k for k in top if k not in r] + ['similarity.' + k for k in sim if k not in r['similarity']]
    miss += [m + '.' + k for m in ['base', 'finetune'] for k in per if k not in r[m]]
    miss += ['transfer.' + k for k in tr if k not in r['transfer']]
    assert not miss, f'{name}: missing {miss}'
    assert r["tokens"] == 8192 and r['ctx'] == 128 and r['hook'] == 'blocks.2.hook_resid_post', (r['tokens'], r['ctx'], r['hook'])
    assert len(r['similarity']['cos_by_position']) == 128 and len(r['base']['log_density']) == 512
cm, cc = mild['similarity']['cos_mean'], code['similarity']['cos_mean']
dm, dc = mild['finetune']['ce_delta'], code['finetune']['ce_delta']
print(f'global cosine: ft-mild {cm:.4f}, ft-code {cc:.4f}; finetune CE delta: ft-mild {dm:.4f}, ft-code {dc:.4f}')
print(f"base CE delta {mild['base']['ce_delta']:.4f}; EV base {mild['base']['explained_variance']:.3f}, "
      f"ft-mild {mild['finetune']['explained_variance']:.3f}, ft-code {code['finetune']['explained_variance']:.3f}")
assert cm > cc, 'ft-mild global cosine is not above ft-code'
assert dc > dm, 'ft-code CE delta is not above ft-mild'
assert abs(mild['base']['ce_delta'] - code['base']['ce_delta']) < 1e-9, 'the base branch differs between the two studies'
def strip(d):
    if isinstance(d, dict):
        return {k: strip(v) for k, v in d.items() if k not in ('throughput', 'provenance', 'seconds')}
    if isinstance(d, list):
        return [strip(v) for v in d]
    return d
a, b = strip(mild), strip(again)
if a != b:
    diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
    raise SystemExit(f're-reduced JSON differs in {diff}')
print('re-reduce of the saved streams: same JSON')
sim = json.load(open('sim.json'))['similarity']
assert abs(sim['cos_mean'] - cm) < 1e-6 and abs(sim['l2_mean'] - mild['similarity']['l2_mean']) < 1e-5, (sim['cos_mean'], cm)
print('similarity.sh (sf-compare) agrees with the study: cos %.6f' % sim['cos_mean'])
PY
