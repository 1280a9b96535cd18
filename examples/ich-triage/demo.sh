#!/usr/bin/env bash
# The headline case on the embedded default: a non-contrast head CT from the ED is ordered,
# arrives, the ich plugin (a DEMONSTRATION detector, not for clinical use) flags it, and the
# RIS, the EHR and the PACS each get their result. Run by `make demo` after the router demo;
# alone: examples/ich-triage/demo.sh (BIN=./bin/osprey by default).
#
# Stand-ins: `osprey listen` is the RIS and the PACS broker (MLLP), `osprey fhir listen` the
# EHR (it validates what it gets), Orthanc the PACS when it is installed (apt-get install
# orthanc orthanc-dicomweb), else a second Osprey with a DICOMweb endpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-./bin/osprey}
base=${DEMO_PORT_BASE:-12590}
work=$(mktemp -d -t osprey-ich-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = "" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

export OSPREY_DATA="$work/data"
export OSPREY_ADMIN="127.0.0.1:$((base + 0))"
export OSPREY_TOKEN="demo-token-$RANDOM$RANDOM$RANDOM$RANDOM"
export OSPREY_TOKEN_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")"
export OSPREY_MLLP_IN="127.0.0.1:$((base + 1))"
export OSPREY_ORM_OUT="127.0.0.1:$((base + 2))"
export OSPREY_RIS_OUT="127.0.0.1:$((base + 3))"
export OSPREY_FHIR_URL="http://127.0.0.1:$((base + 4))/fhir"
export OSPREY_DICOMWEB="127.0.0.1:$((base + 5))"
export OSPREY_NATS_LISTEN="127.0.0.1:$((base + 6))"
export OSPREY_QUIET=2s
pacs_port=$((base + 7))
export OSPREY_PACS_URL="http://127.0.0.1:$pacs_port/dicom-web"
export OSPREY_VIEWER="http://127.0.0.1:$pacs_port"
api="http://$OSPREY_ADMIN"
auth=(-H "Authorization: Bearer $OSPREY_TOKEN")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "$*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 25 "$f" >&2; done; exit 1; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && fail "timed out waiting for $what"
    sleep 0.3
  done
}
files() { find "$1" -type f 2>/dev/null | wc -l; }

say "stand-ins: RIS on $OSPREY_RIS_OUT, PACS broker on $OSPREY_ORM_OUT, EHR on $OSPREY_FHIR_URL"
"$BIN" listen --host 127.0.0.1 --port $((base + 3)) --out "$work/ris" >"$work/ris.log" 2>&1 & pids+=($!)
"$BIN" listen --host 127.0.0.1 --port $((base + 2)) --out "$work/broker" >"$work/broker.log" 2>&1 & pids+=($!)
"$BIN" fhir listen --host 127.0.0.1 --port $((base + 4)) --out "$work/ehr" >"$work/ehr.log" 2>&1 & pids+=($!)

if command -v Orthanc >/dev/null && { [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || [ -e /usr/lib/orthanc/libOrthancDicomWeb.so ]; }; then
  plugin=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
  [ -e "$plugin" ] || plugin=/usr/lib/orthanc/libOrthancDicomWeb.so
  mkdir -p "$work/orthanc"
  cat >"$work/orthanc/orthanc.json" <<EOF
{"Name": "demo-pacs", "StorageDirectory": "$work/orthanc/storage", "IndexDirectory": "$work/orthanc/index",
 "HttpPort": $pacs_port, "DicomPort": $((base + 8)), "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
 "Plugins": ["$plugin"], "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}}
EOF
  say "PACS: Orthanc with DICOMweb on $OSPREY_PACS_URL"
  Orthanc "$work/orthanc/orthanc.json" >"$work/orthanc.log" 2>&1 & pids+=($!)
  pacs=orthanc
else
  say "PACS: Orthanc is not installed; a second Osprey plays the PACS's DICOMweb endpoint on $OSPREY_PACS_URL"
  mkdir -p "$work/pacs"
  cat >"$work/pacs/osprey.yaml" <<EOF
server:
  data_dir: $work/pacs-data
  admin: {listen: 127.0.0.1:$((base + 9))}
channels:
  - name: pacs
    source: {dicomweb: {address: 127.0.0.1:$pacs_port, base_path: /dicom-web, quiet_period: 1s}}
EOF
  "$BIN" serve -c "$work/pacs/osprey.yaml" >"$work/pacs.log" 2>&1 & pids+=($!)
  pacs=osprey
fi
wait_for 30 "the PACS" curl -fsS "$OSPREY_PACS_URL/studies"

say "osprey serve -c examples/ich-triage"
"$BIN" serve -c examples/ich-triage >"$work/serve.log" 2>&1 & pids+=($!)
wait_for 30 "osprey to be ready" curl -fsS "$api/readyz"
wait_for 10 "the plugin's credentials" test -s "$OSPREY_DATA/creds/ich.creds"

say "osprey plugin run ich (its own NATS credentials: $OSPREY_DATA/creds/ich.creds)"
"$BIN" plugin run ich --nats "nats://$OSPREY_NATS_LISTEN" --creds "$OSPREY_DATA/creds/ich.creds" >"$work/plugin.log" 2>&1 & pids+=($!)
plugin_up() { curl -fsS "${auth[@]}" "$api/api/v1/plugins" | grep -q '"instances":\[{'; }
wait_for 30 "the plugin to register" plugin_up

say "the RIS orders two non-contrast head CTs from the ED, STAT (ICH0001, ICH0002)"
"$BIN" send --to "$OSPREY_MLLP_IN" examples/ich-triage/messages/

say "the CT scanner sends the studies by STOW-RS: ICH0001 with a bleed, ICH0002 without"
"$BIN" dicom synth --out "$work/ct1" --seed demo-ich-1 --accession ICH0001 --patient-id MRN0001 --bleed --bleed-side right >/dev/null
"$BIN" dicom synth --out "$work/ct2" --seed demo-ich-2 --accession ICH0002 --patient-id MRN0002 >/dev/null
"$BIN" dicom stow --url "http://$OSPREY_DICOMWEB/dicom-web" "$work/ct1"
"$BIN" dicom stow --url "http://$OSPREY_DICOMWEB/dicom-web" "$work/ct2"

say "waiting for the plugin and the three outputs"
# The PACS receives nothing but Osprey's SRs here, so each study it holds is one SR.
sr_count() { curl -fsS "$OSPREY_PACS_URL/studies" | grep -o '"0020000D"' | wc -l; }
at_least() { [ "$("$2" "${@:3}")" -ge "$1" ]; }
wait_for 120 "the ORU at the RIS" at_least 1 files "$work/ris"
wait_for 60 "the FHIR transaction at the EHR" at_least 1 files "$work/ehr"
wait_for 60 "two SRs in the PACS" at_least 2 sr_count

say "the RIS got an ORU^R01 with priority STAT (TQ1-9) for the positive study only, for the ED patient (PV1-2) the order named"
for f in "$work/ris"/*; do
  "$BIN" hl7 get "$f" MSH-9 PID-3.1 PID-3.4 PV1-2 OBR-18 OBR-25 TQ1-9.1 OBX[1]-3.2 OBX[1]-5.2 OBX[2]-5 OBX[1]-18 | paste -sd' ' -
done
"$BIN" hl7 get "$(find "$work/ris" -type f | head -1)" NTE[1]-3

say "the EHR got a transaction Bundle (validated on arrival), with the alert to the ED team"
cat "$work/ehr.log"
grep -l '"Communication"' "$work/ehr"/*.json >/dev/null || fail "no Communication alert in the FHIR bundle"

say "the PACS ($pacs) has an SR in each study, including the negative one (QIDO-RS)"
for uid in $(curl -fsS "$OSPREY_PACS_URL/studies" | python3 -c 'import json,sys; [print(s["0020000D"]["Value"][0]) for s in json.load(sys.stdin)]'); do
  curl -fsS "$OSPREY_PACS_URL/studies/$uid/series" | python3 -c 'import json,sys; [print("study", sys.argv[1][:40]+"...", "series", s.get("00080060",{}).get("Value",["?"])[0], s.get("0008103E",{}).get("Value",[""])[0]) for s in json.load(sys.stdin)]' "$uid"
done

say "the audit trail: jobs and the reconciled analysis (GET /api/v1/jobs)"
curl -fsS "${auth[@]}" "$api/api/v1/jobs" | python3 -c 'import json,sys; [print(j["id"], j["plugin"], j["status"], j["model_name"], j["model_version"], str(j["latency_ms"])+"ms") for j in json.load(sys.stdin)["jobs"]]'

[ "$(files "$work/ris")" -eq 1 ] || fail "expected exactly one ORU (the negative study has no RIS rule)"
[ "$(sr_count)" -ge 2 ] || fail "expected an SR per study"
say "ich-triage demo ok (the detector is a demonstration, not for clinical use)"
