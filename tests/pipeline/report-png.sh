#!/bin/bash
# sf-report --png DIR: one non-blank PNG per plot (rsvg-convert); an empty set's plot is a short
# 430x64 one that says so.
source "$SF_ROOT/tests/lib.sh"
need_py zlib
command -v rsvg-convert >/dev/null || skip "rsvg-convert missing (librsvg2-bin, scripts/install-deps.sh)"
sf-report "$SF_ROOT/tests/data/report/transfer.json" --png png -o rep.html || die "sf-report --png failed"
n_svg=$(grep -o '<svg' rep.html | wc -l); n_png=$(ls png/*.png | wc -l)
[ "$n_svg" = "$n_png" ] || die "$n_png PNGs for $n_svg plots"
ls png/*.svg 2>/dev/null && die "temporary SVGs left behind"
# an empty set is a 430x64 plot saying so (no axes); every other plot 430x300
empty=$(grep -o '<svg [^>]*id="[^"]*"[^>]* height="64"' rep.html | sed 's/.* id="\([^"]*\)".*/png\/\1.png/')
full=$(ls png/*.png | grep -vxF "${empty:-/}")
"$PY" "$SF_ROOT/tests/pipeline/report-png.py" --min-colours 8 --size 430x300 $full > colours.txt || { cat colours.txt; die "a blank PNG or a wrong size"; }
[ -z "$empty" ] || "$PY" "$SF_ROOT/tests/pipeline/report-png.py" --min-colours 8 --size 430x64 $empty > colours-empty.txt ||
  { cat colours-empty.txt; die "a blank empty-set PNG or a wrong size"; }
echo "OK: $n_png PNGs ($(echo $empty | wc -w) of empty sets)"
