#!/usr/bin/env bash
# No function over 80 lines in stages/ or proto/ unless the comment above it says why ("long:").
set -u
out=$("$SF_ROOT/scripts/long-functions.sh" 80) || { echo "functions over 80 lines without a 'long:' note:"; echo "$out"; exit 1; }
# the checker itself finds a long function (so this test can fail)
f="$TMPDIR/long.c"
{ echo "static int big(void)"; echo "{"; for i in $(seq 90); do echo "    x++;"; done; echo "}"; } > "$f"
"$SF_ROOT/scripts/long-functions.sh" 80 "$f" | grep -q "long.c:2 big 90" || { echo "checker missed a 90-line function"; exit 1; }
{ echo "/* long: a test */"; cat "$f"; } > "$f.2.c"
"$SF_ROOT/scripts/long-functions.sh" 80 "$f.2.c" || { echo "checker ignored a 'long:' note"; exit 1; }
