#!/usr/bin/env bash
# A small Gemma-style tokenizer.json of the kind sf-mkmodel writes (model.type BPE, byte_fallback,
# normalizer Replace " " -> "▁", specials <pad>/<eos>/<bos>/<unk>, the 256 <0xNN> byte pieces, a
# few merged pieces), merges given as "a b" strings and again as [a, b] pairs; no post_processor
# (BOS comes from the <bos> added token). Expected ids are worked out by hand in the comments.
source "$SF_ROOT/tests/lib.sh"
"$PY" - <<'PY' || die "writing tokenizers"
import json
vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
for b in range(256):
    vocab["<0x%02X>" % b] = 4 + b                      # byte b -> 4 + b
for i, p in enumerate(["\u2581", "a", "b", "c", "ab", "\u2581ab", "abc", "\u2581\u2581"]):
    vocab[p] = 260 + i                                   # ▁ 260, a 261, b 262, c 263, ab 264, ▁ab 265, abc 266, ▁▁ 267
merges = [("a", "b"), ("\u2581", "ab"), ("ab", "c"), ("\u2581", "\u2581")]   # ranks 0..3
added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, c in enumerate(["<pad>", "<eos>", "<bos>", "<unk>"])]
for name, m in [("str", [a + " " + b for a, b in merges]), ("pairs", [list(x) for x in merges])]:
    json.dump({"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
               "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
               "pre_tokenizer": None, "post_processor": None, "decoder": None,
               "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True,
                         "byte_fallback": True, "vocab": vocab, "merges": m}},
              open("tok-%s.json" % name, "w"), ensure_ascii=False)
# the same with <eos> lstrip + rstrip: it swallows the whitespace around it
added[1].update(lstrip=True, rstrip=True)
json.dump({"added_tokens": added, "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
           "pre_tokenizer": None, "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
           "vocab": vocab, "merges": [list(x) for x in merges]}}, open("tok-strip.json", "w"))
PY
mkdir -p t
printf 'ab abc' > t/1      # a b ▁ a b c -> (a b)@0, (a b)@3 -> ab ▁ ab c -> (▁ ab) rank 1 beats (ab c) rank 2 -> [264 265 263]
printf 'abc' > t/2         # ab c -> abc -> [266]
printf '  a' > t/3         # ▁ ▁ a -> [267 261]
printf '   ' > t/4         # ▁ ▁ ▁ -> leftmost pair first -> ▁▁ ▁ -> [267 260]
printf '\xc3\xa9' > t/5    # é: no piece -> bytes C3 A9 -> [199 173]
printf 'a<bos>b<eos>' > t/6   # added tokens cut out first -> [261 2 262 1]
printf 'd' > t/7           # d: byte 0x64 -> [104]
printf '\xff' > t/8        # invalid byte -> U+FFFD = EF BF BD -> [243 195 193]
printf 'a\xe2\x82' > t/9   # truncated sequence -> one U+FFFD -> [261 243 195 193]
printf '' > t/10           # empty -> []
want='[264, 265, 263]
[266]
[267, 261]
[267, 260]
[199, 173]
[261, 2, 262, 1]
[104]
[243, 195, 193]
[261, 243, 195, 193]
[]'
for v in str pairs; do
  got=$(sf-tokenize --tokenizer tok-$v.json --format text --dump-ids t/1 t/2 t/3 t/4 t/5 t/6 t/7 t/8 t/9 t/10) || die "sf-tokenize tok-$v failed"
  [ "$got" == "$want" ] || die "tok-$v: expected
$want
got
$got"
  sf-tokenize --tokenizer tok-$v.json --format text --ctx 4 t/1 | sf-cat > f.jsonl || die "frames failed"
  grep -q '"bos_id":2' f.jsonl && grep -q '"vocab_size":268' f.jsonl && grep -q '"data":\[2,264,265,263\]' f.jsonl \
    || die "tok-$v: header/rows wrong: $(cat f.jsonl)"
  echo "ok merges as $v"
done
printf 'a <eos> \t b' > s.txt   # plain: "a▁" <eos> "▁\t▁b" -> [261 260] 1 [260 13 260 262] (\t = byte 9 -> 13)
expect_plain='[261, 260, 1, 260, 13, 260, 262]'
expect_strip='[261, 1, 262]'          # lstrip/rstrip: "a" <eos> "b"
[ "$(sf-tokenize --tokenizer tok-str.json --format text --dump-ids s.txt)" == "$expect_plain" ] || die "plain <eos>: $(sf-tokenize --tokenizer tok-str.json --format text --dump-ids s.txt)"
[ "$(sf-tokenize --tokenizer tok-strip.json --format text --dump-ids s.txt)" == "$expect_strip" ] || die "lstrip/rstrip <eos>: $(sf-tokenize --tokenizer tok-strip.json --format text --dump-ids s.txt)"
echo "ok lstrip/rstrip"

# a piece with "▁" after another character ("a▁"): BPE must see the whole segment, the merge
# a + ▁ crosses what would otherwise be a word boundary: "a b" -> a▁ b = [3 1]
printf '%s' '{"added_tokens": [], "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
 "pre_tokenizer": null, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "\u2581": 2, "a\u2581": 3},
 "merges": [["a", "\u2581"]]}}' > tok-cross.json
got=$(printf 'a b' | sf-tokenize --tokenizer tok-cross.json --no-bos --format text --dump-ids) || die "tok-cross failed"
[ "$got" == "[3, 1]" ] || die "merge across ▁: expected [3, 1], got $got"
echo "ok merge across ▁"
