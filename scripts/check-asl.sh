#!/usr/bin/env bash
# Validate every state machine with both ASL validators: asl-validator (schema and paths) and
# statelint (state-machine rules). statelint needs the ${...} placeholders replaced by ARNs, and
# it predates MaxConcurrencyPath (added to ASL in 2023), so for statelint alone that field is
# replaced by an equivalent static MaxConcurrency. Nothing else is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/.bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for f in statemachine/*.asl.json; do
  "$bin/asl-validator" --json-path "$f" || status=1
  python3 - "$f" "$tmp/$(basename "$f")" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"\$\{([A-Za-z0-9]+)\}", r"arn:aws:lambda:us-east-1:123456789012:function:\1", text)
text = re.sub(r'"MaxConcurrencyPath":\s*"[^"]*"', '"MaxConcurrency": 10', text)
open(sys.argv[2], "w").write(text)
PY
  if "$bin/statelint" "$tmp/$(basename "$f")"; then
    echo "statelint: $f is valid"
  else
    status=1
  fi
done
exit $status
