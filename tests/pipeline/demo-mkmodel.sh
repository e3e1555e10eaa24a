#!/usr/bin/env bash
# sf-mkmodel: deterministic bytes; the safetensors layout and shapes, the tokenizer.json layout
# and its ids (sf-tokenize vs a plain numpy-free BPE written here), bf16 = f32 rounded to
# nearest even, and --finetune-of: each tensor of the chosen layers moved by exactly the asked
# relative Frobenius norm, every other tensor untouched — all checked in Python.
source "$SF_ROOT/tests/lib.sh"
need_py numpy
CORPUS=$SF_ROOT/data/demo/stories.jsonl
head -300 "$CORPUS" > corpus.jsonl
sf-mkmodel -o a --corpus corpus.jsonl --seed 7 --merges 64 --layers 3 || die "mkmodel a"
sf-mkmodel -o b --corpus corpus.jsonl --seed 7 --merges 64 --layers 3 || die "mkmodel b"
sf-mkmodel -o c --corpus corpus.jsonl --seed 8 --merges 64 --layers 3 || die "mkmodel c"
sf-mkmodel -o h --corpus corpus.jsonl --seed 7 --merges 64 --layers 3 --dtype bf16 || die "mkmodel bf16"
sf-mkmodel -o ft --finetune-of a --perturb-layers 0,2 --magnitude 0.25 --seed 3 || die "finetune"
for f in config.json model.safetensors tokenizer.json; do cmp -s a/$f b/$f || die "a/$f differs between two runs with the same seed"; done
cmp -s a/model.safetensors c/model.safetensors && die "seeds 7 and 8 gave the same weights"
cmp -s a/tokenizer.json ft/tokenizer.json || die "the finetune's tokenizer.json is not the base's"
printf '%s\n' '{"text": "The fox went to the bridge. \"Is this yours?\" asked Zoe!"}' '{"text": "  two  spaces and a tab\there, caf\u00e9"}' > t.jsonl
sf-tokenize --tokenizer a t.jsonl --dump-ids > ids.txt || die "sf-tokenize on the made tokenizer"
"$PY" - <<'PY' || die "python checks"
import json
import numpy as np
import sfstream as sf
def load(path):   # F32 or BF16 only, the writer's layout checked
    return sf.read_safetensors(path, strict=True, dtypes=("F32", "BF16"))
cfg = json.load(open('a/config.json')); W = load('a/model.safetensors')
d, V, L, ff = cfg['hidden_size'], cfg['vocab_size'], cfg['num_hidden_layers'], cfg['intermediate_size']
hd = d // cfg['num_attention_heads']; kv = cfg['num_key_value_heads'] * hd
assert cfg['architectures'] == ['LlamaForCausalLM'] and L == 3 and cfg['tie_word_embeddings'] is False
want = {'model.embed_tokens.weight': (V, d), 'model.norm.weight': (d,), 'lm_head.weight': (V, d)}
for l in range(L):
    p = f'model.layers.{l}.'
    want.update({p + 'input_layernorm.weight': (d,), p + 'post_attention_layernorm.weight': (d,),
                 p + 'self_attn.q_proj.weight': (d, d), p + 'self_attn.k_proj.weight': (kv, d),
                 p + 'self_attn.v_proj.weight': (kv, d), p + 'self_attn.o_proj.weight': (d, d),
                 p + 'mlp.gate_proj.weight': (ff, d), p + 'mlp.up_proj.weight': (ff, d), p + 'mlp.down_proj.weight': (d, ff)})
assert {k: tuple(v.shape) for k, v in W.items()} == want
# bf16 = f32 rounded to nearest even
Hb = load('h/model.safetensors')
for k, v in W.items():
    assert np.array_equal(sf.as_stored(Hb[k], "F32").view(np.uint32), sf.as_stored(v, "BF16").view(np.uint32)), k
# the finetune
Fw = load('ft/model.safetensors'); fc = json.load(open('ft/config.json'))
assert fc['saeflow_finetune']['perturb_layers'] == [0, 2] and fc['saeflow_finetune']['magnitude'] == 0.25
for k, v in W.items():
    rel = np.linalg.norm(Fw[k].astype(np.float64) - v) / np.linalg.norm(v.astype(np.float64))
    if k.startswith('model.layers.0.') or k.startswith('model.layers.2.'): assert abs(rel - 0.25) < 1e-5, (k, rel)
    else: assert rel == 0, (k, rel)
# tokenizer.json
t = json.load(open('a/tokenizer.json')); m = t['model']; vocab = m['vocab']
assert m['type'] == 'BPE' and m['byte_fallback'] is True and len(vocab) == V
assert [vocab[s] for s in ['<pad>', '<eos>', '<bos>', '<unk>']] == [0, 1, 2, 3]
assert all(vocab['<0x%02X>' % i] == 4 + i for i in range(256)) and sorted(vocab.values()) == list(range(V))
assert t['normalizer'] == {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '\u2581'} and t['pre_tokenizer'] is None
ranks = {tuple(r.split(' ')): i for i, r in enumerate(m['merges'])}
assert len(m['merges']) == 64 and all(a in vocab and b in vocab and a + b in vocab for a, b in ranks)
def bpe(text):   # HF BPE without pre-tokenizer: characters (else UTF-8 bytes), lowest-rank merge first
    syms = []
    for ch in text.replace(' ', '\u2581'):
        syms += [ch] if ch in vocab else ['<0x%02X>' % b for b in ch.encode()]
    while True:
        best = min(((ranks[p], i) for i, p in enumerate(zip(syms, syms[1:])) if p in ranks), default=None)
        if best is None: return [vocab[s] for s in syms]
        i = best[1]; syms[i:i + 2] = [syms[i] + syms[i + 1]]
texts = [json.loads(l)['text'] for l in open('t.jsonl')]
got = [json.loads(l) for l in open('ids.txt')]
for tx, g in zip(texts, got):
    assert bpe(tx) == g, (tx, bpe(tx), g)
print('ok: layout, bf16 rounding, finetune magnitudes, tokenizer ids')
PY
