#!/usr/bin/env bash
# make demo: the whole path on the embedded default (embedded NATS JetStream, SQLite).
# Two `osprey listen` stand in for the PACS broker and the RIS; `osprey serve` runs
# examples/mllp-router; `osprey send` plays the hospital feed. Nothing outside this
# repository is needed. Ports can be moved with DEMO_PORT_BASE (default 12570).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-./bin/osprey}
base=${DEMO_PORT_BASE:-12570}
work=$(mktemp -d -t osprey-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = "" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

export OSPREY_DATA="$work/data"
export OSPREY_ADMIN="127.0.0.1:$((base + 10))"
export OSPREY_TOKEN="demo-token-$RANDOM$RANDOM$RANDOM"
export OSPREY_MLLP_IN="127.0.0.1:$((base + 5))"
export OSPREY_ADT_OUT="127.0.0.1:$((base + 6))"
export OSPREY_ORM_OUT="127.0.0.1:$((base + 7))"
api="http://$OSPREY_ADMIN"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $what" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done; exit 1; fi
    sleep 0.2
  done
}
count() { find "$1" -type f 2>/dev/null | wc -l; }

say "receivers: PACS broker (ADT) on $OSPREY_ADT_OUT, RIS (orders) on $OSPREY_ORM_OUT"
"$BIN" listen --host 127.0.0.1 --port $((base + 6)) --out "$work/adt-out" >"$work/adt.log" 2>&1 & pids+=($!)
"$BIN" listen --host 127.0.0.1 --port $((base + 7)) --out "$work/orm-out" >"$work/orm.log" 2>&1 & pids+=($!)

say "osprey serve -c examples/mllp-router (MLLP in on $OSPREY_MLLP_IN, admin on $OSPREY_ADMIN)"
"$BIN" serve -c examples/mllp-router >"$work/serve.log" 2>&1 & pids+=($!)
wait_for 30 "osprey to be ready" curl -fsS "$api/readyz"

say "the hospital feed sends five messages (2 ADT, 2 ORM, 1 lab ORU that the filter drops)"
"$BIN" send --to "$OSPREY_MLLP_IN" examples/mllp-router/messages/

say "the feed resends the admission (same MSH-10): answered AA, recorded as a duplicate, not sent twice"
"$BIN" send --to "$OSPREY_MLLP_IN" examples/mllp-router/messages/01-adt-a01-admit.hl7

wait_for 30 "deliveries" bash -c "[ \$(find '$work/adt-out' -type f | wc -l) -ge 2 ] && [ \$(find '$work/orm-out' -type f | wc -l) -ge 2 ]"

say "what arrived where (PV1-3.1 was mapped through tables/locations.csv, MSH-6 set to OSPREY)"
for dir in adt-out orm-out; do
  for f in "$work/$dir"/*; do
    printf '%-8s %-28s ' "$dir" "$(basename "$f")"
    "$BIN" hl7 get "$f" MSH-9 MSH-6 PV1-3.1 PID-5 | paste -sd' ' -
  done
done

say "message history (osprey messages search)"
"$BIN" messages search --api "$api" --token "$OSPREY_TOKEN"

say "channel counters (GET /api/v1/channels)"
curl -fsS -H "Authorization: Bearer $OSPREY_TOKEN" "$api/api/v1/channels"; echo

[ "$(count "$work/adt-out")" -eq 2 ] && [ "$(count "$work/orm-out")" -eq 2 ] || { echo "unexpected deliveries" >&2; exit 1; }
say "demo ok"

# The headline case: an ED head CT, the ich plugin, and the results to RIS, EHR and PACS.
BIN="$BIN" DEMO_PORT_BASE=$((base + 30)) examples/ich-triage/demo.sh
