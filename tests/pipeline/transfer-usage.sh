#!/usr/bin/env bash
# transfer.sh / train.sh / similarity.sh / demo.sh: --help, and usage errors exit 2 with a message.
source "$SF_ROOT/tests/lib.sh"
P=$SF_ROOT/pipelines
for s in transfer train similarity demo; do
  "$P/$s.sh" --help | grep -q "Exit codes" || die "$s.sh --help has no exit codes"
done
mkdir -p m s
expect2() { # message-pattern command...
  local pat=$1; shift
  "$@" > out.txt 2> err.txt && die "exit 0: $*"
  [ $? = 2 ] || die "not exit 2: $*"
  grep -q -- "$pat" err.txt || die "no '$pat' in: $(cat err.txt)"
}
expect2 "are required" "$P/transfer.sh" --base m
expect2 "nowhere: not a directory" "$P/transfer.sh" --base nowhere --finetune m --sae s --data x
expect2 "cannot read" "$P/transfer.sh" --base m --finetune m --sae s --data missing.jsonl
touch d.jsonl
expect2 "s/cfg.json: cannot read" "$P/transfer.sh" --base m --finetune m --sae s --data d.jsonl
expect2 "exclude each other" "$P/transfer.sh" --base m --finetune m --sae s --data d.jsonl --outlier-max-norm 5 --outlier-multiplier 2
expect2 "needs --outlier-multiplier" "$P/transfer.sh" --base m --finetune m --sae s --data d.jsonl --outlier-norm-scalar 0.3
expect2 "unknown option '--bogus'" "$P/transfer.sh" --bogus
expect2 "are required" "$P/train.sh" --model m
expect2 "are required" "$P/similarity.sh" --base m
expect2 "unknown option" "$P/demo.sh" --bogus
echo ok
