#!/usr/bin/env bash
# A shard checks, before it runs, that the checkpoints, the SAE and the data still hash to what
# the plan recorded (issue 13: a node with another copy, or a file changed since the plan, would
# give numbers of another study): an SAE edited after --plan makes --from-plan --shard exit 1
# naming it, and no shard result appears; restored, the shard runs.
source "$SF_ROOT/tests/lib.sh"
need_fixtures
F=$SF_FIXTURES; M=$F/models
cp -r "$F/saes/stories260k-L2-relu" sae
cp "$F/data/stories.jsonl" data.jsonl
T=$SF_ROOT/pipelines/transfer.sh
"$T" --plan plan --base "$M/stories260k" --finetune "$M/stories260k-ft-mild" --sae sae --data data.jsonl \
    --tokens 4096 --rows 8 2> plan.err || { cat plan.err; die "--plan failed"; }
cp sae/cfg.json cfg.keep
printf '\n' >> sae/cfg.json
"$T" --from-plan plan --shard 0/2 2> s.err && die "a shard with a changed SAE exited 0"
grep -q "error: shard 0/2: the sae (.*sae) is not what the plan hashed (sha256 [0-9a-f]\{12\}, the plan has [0-9a-f]\{12\}): it changed since, or this host has another copy" s.err ||
  { cat s.err; die "no message naming the changed SAE"; }
[ ! -e plan/shards/0-of-2.json ] || die "a shard result appeared anyway"
cp cfg.keep sae/cfg.json
echo '{"text": "one more story"}' >> data.jsonl
"$T" --from-plan plan --shard 0/2 2> d.err && die "a shard with changed data exited 0"
grep -q "error: shard 0/2: the data (.*data.jsonl) is not what the plan hashed" d.err || { cat d.err; die "no message naming the data"; }
head -n -1 data.jsonl > d2 && mv d2 data.jsonl
"$T" --from-plan plan --shard 0/2 2> ok.err || { cat ok.err; die "the restored shard failed"; }
[ -f plan/shards/0-of-2.json ] || die "no shard result"
