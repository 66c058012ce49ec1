#!/usr/bin/env bash
# Checks docker-compose.yml without a Docker engine:
#  1. `docker-compose config` (Debian's docker-compose) accepts the file;
#  2. each of our services accepts the configuration compose gives it: its binary
#     runs `--check-config` with exactly the environment and command compose
#     would use (and nothing from this shell's environment);
#  3. every loadgen knob is passed through compose's environment;
#  and `.env.example`, copied as is, leaves the configuration unchanged.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shop-demo/target}/debug
cd "$ROOT"

if ! command -v docker-compose >/dev/null; then
  echo "[compose-check] installing Debian's docker-compose" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
fi

resolved=$(mktemp)
trap 'rm -f "$resolved"' EXIT
# An empty project env file, so a developer's own .env does not leak into the check.
empty_env=$(mktemp)
env -i PATH="$PATH" docker-compose --env-file "$empty_env" -f docker-compose.yml config >"$resolved"
rm -f "$empty_env"
echo "[compose-check] docker-compose config: ok"
# `cp .env.example .env` must not change the demo: every line in it is commented out.
if ! env -i PATH="$PATH" docker-compose --env-file .env.example -f docker-compose.yml config | cmp -s - "$resolved"; then
  echo "[compose-check] FAILED: .env.example, copied as is, changes compose's configuration (comment its lines out)" >&2
  exit 1
fi
echo "[compose-check] .env.example as copied changes nothing"

failed=0
# One line per service: name, then the command and environment as JSON.
while IFS=$'\t' read -r service command env_json; do
  mapfile -t env_args < <(python3 -c 'import json,sys; [print(f"{k}={v}") for k,v in json.loads(sys.argv[1]).items()]' "$env_json")
  if out=$(env -i PATH="$PATH" "${env_args[@]}" "$BIN_DIR/$command" --check-config 2>&1); then
    echo "[compose-check] $service accepts compose's configuration:"
    printf '%s\n' "$out" | tail -n 3 | sed 's/^/    /'
  else
    echo "[compose-check] FAILED: $service rejects compose's configuration:" >&2
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /' >&2
    failed=1
  fi
done < <(python3 - "$resolved" <<'PY'
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for name in ("cdc", "loadgen", "analytics", "dashboard"):
    svc = doc["services"][name]
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    # A key without a value is passed through from the shell only when set
    # there; this check runs with an empty shell environment, so it is unset.
    env = {k: str(v) for k, v in env.items() if v is not None}
    command = svc["command"][0] if isinstance(svc["command"], list) else svc["command"].split()[0]
    print(f"{name}\t{command}\t{json.dumps(env)}")
PY
)

# 3. Every loadgen knob (each `[env: NAME]` of `loadgen --help`) is in compose's
#    loadgen environment, so `.env` or the shell can set any of them.
missing=$(python3 - "$resolved" <<'PY' "$("$BIN_DIR/loadgen" --help)"
import re, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
env = doc["services"]["loadgen"].get("environment") or {}
if isinstance(env, list):
    env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
knobs = re.findall(r"\[env: ([A-Z0-9_]+)", sys.argv[2])
print(" ".join(k for k in knobs if k not in env))
PY
)
if [[ -n $missing ]]; then
  echo "[compose-check] FAILED: loadgen knobs missing from docker-compose.yml's loadgen environment: $missing" >&2
  failed=1
else
  echo "[compose-check] every loadgen knob passes through compose's environment"
fi
exit $failed
