#!/usr/bin/env bash
# Smoke test of `make demo`: it starts, shows non-empty summaries, and stops
# cleanly on a stop signal. Prints a closing "N passed, N failed" line.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Long enough for a snapshot, a few purchases and analytics' first batches.
DEMO_INTERVAL=5 bash "$ROOT/scripts/demo.sh" >"$out" 2>&1 &
demo=$!
passed=0 failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok: $1"; else failed=$((failed + 1)); echo "FAILED: $1"; fi; }

# Wait (bounded) until a live view shows at least one item with revenue.
deadline=$((SECONDS + ${DEMO_SMOKE_TIMEOUT:-240}))
shown=0
while ((SECONDS < deadline)) && kill -0 "$demo" 2>/dev/null; do
  if awk '/top items by revenue/{f=1;next} /conversion by channel/{f=0} f && /\|/ && !/item_name/ {n++} END{exit !(n>0)}' "$out"; then
    shown=1; break
  fi
  sleep 1
done
check "make demo shows non-empty summaries" '((shown))'
# The live dashboard answers with every panel, and top items hold rows.
check "the dashboard serves its page and panels" \
  'grep -q "<svg id=\"chart\"" <(curl -fsS "http://${DASHBOARD_ADDR:-127.0.0.1:8088}/") &&
   curl -fsS "http://${DASHBOARD_ADDR:-127.0.0.1:8088}/api/dashboard" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(not d[\"top_items\"][\"rows\"])"'
# SIGTERM: a background job of a script ignores SIGINT, so it stands in for Ctrl-C
# here; demo.sh handles both the same way.
kill -TERM "$demo" 2>/dev/null
stop_deadline=$((SECONDS + 40))
while kill -0 "$demo" 2>/dev/null && ((SECONDS < stop_deadline)); do sleep 0.5; done
check "make demo stops within 40 s of a stop signal" '! kill -0 "$demo" 2>/dev/null'
wait "$demo"; status=$?
check "make demo exits 0 after a stop signal (exit $status)" '((status == 0))'
check "make demo reports a clean stop" 'grep -q "stopped cleanly" "$out"'
if ((failed)); then
  echo "--- demo output (last 40 lines) ---"; tail -n 40 "$out"
  for f in "$ROOT"/.stack/demo/*.log; do echo "--- $f"; tail -n 15 "$f"; done
fi
echo "demo smoke: $passed passed, $failed failed"
((failed == 0))
