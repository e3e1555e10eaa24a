#!/bin/bash
# sf-report --png DIR: one non-blank PNG per plot (rsvg-convert).
source "$SF_ROOT/tests/lib.sh"
need_py zlib
command -v rsvg-convert >/dev/null || skip "rsvg-convert missing (librsvg2-bin, scripts/install-deps.sh)"
sf-report "$SF_ROOT/tests/data/report/transfer.json" --png png -o rep.html || die "sf-report --png failed"
n_svg=$(grep -o '<svg' rep.html | wc -l); n_png=$(ls png/*.png | wc -l)
[ "$n_svg" = "$n_png" ] || die "$n_png PNGs for $n_svg plots"
ls png/*.svg 2>/dev/null && die "temporary SVGs left behind"
"$PY" "$SF_ROOT/tests/pipeline/report-png.py" --min-colours 8 --size 430x300 png/*.png > colours.txt || { cat colours.txt; die "a blank PNG or a wrong size"; }
echo "OK: $n_png PNGs"
