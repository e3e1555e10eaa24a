#!/usr/bin/env bash
# bench/bench-tokenize.sh - sf-tokenize throughput (MB of document text per second, end to end:
# tokenizer load, JSONL parsing, encoding, batching, frames to /dev/null) on data/stories.jsonl
# + data/code.jsonl (3.4 MB of text), as a ratio to python3-sentencepiece encoding the same
# texts (encode() calls only: JSON parsing and model load not timed, so the ratio favours
# Python); Gemma v1 tokenizer.json load time. One thread (SF_TOKENIZE_THREADS), plus two rows
# with --threads 2. Wall-clock, best of 3 runs; on a shared machine the load average is printed
# as a note. Prints table rows.
set -u
F=${SF_FIXTURES:-$(cd "$(dirname "$0")/../../shared/fixtures" 2>/dev/null && pwd)}
[ -d "$F/tokenizers" ] || { echo "| sf-tokenize | skipped | | | fixtures not found |"; exit 0; }
command -v sf-tokenize >/dev/null || export PATH="$(dirname "$0")/../${SF_BUILD:-build}/bin:$PATH"
/usr/bin/python3 - "$F" "${SF_TOKENIZE_THREADS:-}" <<'PY'
import json, os, resource, subprocess, sys, time
F, threads = sys.argv[1], sys.argv[2]
data = [F + "/data/stories.jsonl", F + "/data/code.jsonl"]
texts = [json.loads(l)["text"] for f in data for l in open(f)]
mb = sum(len(t.encode()) for t in texts) / 1e6
T = F + "/tokenizers/"

def best(f, n=3):
    return min(f() for _ in range(n))

cpu = {}   # seconds of CPU (user + sys) of the fastest run, by args

def run(args):
    def once():
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(["sf-tokenize"] + args + ["-o", "/dev/null"], check=True)
        t = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if t < cpu.get(tuple(args), (1e9, 0))[0]:
            cpu[tuple(args)] = (t, c)
        return t
    return best(once)

try:
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=T + "mistral-v0.1/tokenizer.model")
    py_cpu = [1e9]
    def py_once():
        t0, c0 = time.perf_counter(), time.process_time()
        for t in texts:
            sp.encode(t)
        py_cpu[0] = min(py_cpu[0], time.process_time() - c0)
        return time.perf_counter() - t0
    py_rate = mb / best(py_once, 2)
    py_cpu_rate = mb / py_cpu[0]
except ImportError:
    py_rate = None

def row(what, rate, note):
    print("| sf-tokenize | %s | %.2f | MB/s | %s |" % (what, rate, note))

def ratio(rate):
    return "%.2f× python3-sentencepiece Mistral .model (%.2f MB/s)" % (rate / py_rate, py_rate) if py_rate else "python3-sentencepiece missing"

extra = ["--threads", threads or "1"]          # one thread unless SF_TOKENIZE_THREADS says otherwise
t_load = best(lambda: (lambda t0: (subprocess.run(["sf-tokenize", "--tokenizer", T + "gemma-v1/tokenizer.json",
         "--format", "text", "-o", "/dev/null", "/dev/null"], check=True), time.perf_counter() - t0)[1])(time.perf_counter()))
t_mm = run(["--tokenizer", T + "mistral-v0.1/tokenizer.model"] + extra + data)
t_mj = run(["--tokenizer", T + "mistral-v0.1/tokenizer.json"] + extra + data)
t_gj = run(["--tokenizer", T + "gemma-v1/tokenizer.json"] + extra + data)
t_tk = run(["--tokenizer", T + "tok512/tokenizer.model"] + extra + data)
t_mm2 = run(["--tokenizer", T + "mistral-v0.1/tokenizer.model", "--threads", "2"] + data)
t_gj2 = run(["--tokenizer", T + "gemma-v1/tokenizer.json", "--threads", "2"] + data)
print("| sf-tokenize | machine load average while measuring | %.1f | | %d cores |" % (os.getloadavg()[0], os.cpu_count()))
row("Mistral v0.1 tokenizer.model (libsentencepiece), %.1f MB" % mb, mb / t_mm, ratio(mb / t_mm))
row("Mistral v0.1 tokenizer.json (C BPE, same ids)", mb / t_mj, ratio(mb / t_mj))
row("Gemma v1 tokenizer.json (C BPE, 256k vocab), incl. load", mb / t_gj, ratio(mb / t_gj) + "; different vocabulary")
row("Gemma v1 tokenizer.json, excluding load", mb / (t_gj - t_load), "")
row("tok512 tokenizer.model (libsentencepiece)", mb / t_tk, "")
row("Mistral v0.1 tokenizer.model, --threads 2", mb / t_mm2, ratio(mb / t_mm2) + "; %d cores, shared" % os.cpu_count())
row("Gemma v1 tokenizer.json, --threads 2, incl. load", mb / t_gj2, "%.2f× one thread" % (t_gj / t_gj2))
if py_rate:
    for what, args in [("Mistral .model", ["--tokenizer", T + "mistral-v0.1/tokenizer.model"] + extra + data),
                       ("Mistral .json", ["--tokenizer", T + "mistral-v0.1/tokenizer.json"] + extra + data),
                       ("Gemma .json", ["--tokenizer", T + "gemma-v1/tokenizer.json"] + extra + data)]:
        c = cpu[tuple(args)][1]
        print("| sf-tokenize | %s per CPU second (user+sys, contention-proof) | %.2f | MB/s | %.2f× python3-sentencepiece Mistral .model per CPU second (%.2f MB/s) |"
              % (what, mb / c, (mb / c) / py_cpu_rate, py_cpu_rate))
print("| sf-tokenize | Gemma v1 tokenizer.json load (256k pieces, 580k merges; process start to exit, empty input) | %.3f | s | target < 1 s |" % t_load)
PY
