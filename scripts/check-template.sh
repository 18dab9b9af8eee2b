#!/usr/bin/env bash
# Template checks: SAM validation with lint, cfn-lint, and the least-privilege IAM check.
# Offline: no AWS credentials or network needed (the region is only a placeholder).
# Runs every check, then exits non-zero if any failed, naming them.
set -uo pipefail

cd "$(dirname "$0")/.."
VENV_BIN="${STACKWAVE_VENV_BIN:-.venv/bin}"
TEMPLATES=(template.yaml examples/execution-role.yaml)

for tool in sam cfn-lint python; do
  if [[ ! -x "$VENV_BIN/$tool" ]]; then
    echo "check-template: $VENV_BIN/$tool is missing; install the project's tools into .venv first" >&2
    exit 2
  fi
done

failed=()

step() {
  local name="$1"
  shift
  echo "== $name"
  if "$@"; then
    echo "== $name: ok"
  else
    echo "== $name: FAILED" >&2
    failed+=("$name")
  fi
}

step "sam validate --lint" env SAM_CLI_TELEMETRY=0 "$VENV_BIN/sam" validate --lint \
  --template template.yaml --region us-east-1
step "cfn-lint" "$VENV_BIN/cfn-lint" "${TEMPLATES[@]}"
step "check-iam" "$VENV_BIN/python" scripts/check-iam.py --self-test "${TEMPLATES[@]}"

if ((${#failed[@]})); then
  echo "check-template: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "check-template: all template checks passed"
