#!/usr/bin/env bash
# A province, the national hub and a ministry on three RabbitMQ brokers, joined by bridges, the
# province's audit log witnessed by the hub: the steps of docs/inter-level.md, run and checked.
#
#   scripts/rabbitmq-buses.sh start     # the three brokers (root; Debian's rabbitmq-server)
#   scripts/inter-level.sh              # from the project, with its virtualenv made (make .venv)
#
# The Thanh Hóa provincial office (000.00.00.H56) sends a document to the Ministry of Health
# (000.00.00.G12): province's bus -> shovel -> the hub's bus -> shovel -> the ministry's bus ->
# the ministry's daemon -> its system; the transport receipt goes back the same way. Then one
# evidence file proves the journey across the two logs, and the province's log verifies with
# the hub's word for it. Everything is made under $WORK and removed at the end unless KEEP=1.
#
# Settings, from the environment:
#   EXCHANGE          the exchange on all three buses, default lgsp.inter-level
#   PROVINCE_PORT, HUB_PORT, MINISTRY_PORT, SYSTEM_PORT   loopback ports of the daemons and the
#                     agencies' system, default 18091..18094
#   WORK              the working folder, default a new temporary one
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PATH="$here/.venv/bin:$PATH"
EXCHANGE="${EXCHANGE:-lgsp.inter-level}"
WORK="${WORK:-$(mktemp -d -t lgsp-inter-level.XXXXXX)}"
declare -A port=([province]="${PROVINCE_PORT:-18091}" [hub]="${HUB_PORT:-18092}" [ministry]="${MINISTRY_PORT:-18093}")
declare -A bus=([province]=1 [hub]=2 [ministry]=3)
declare -A code=([province]=000.00.00.H56 [hub]=000.00.00.G22 [ministry]=000.00.00.G12)
system_port="${SYSTEM_PORT:-18094}"
PASSWORD="bridge-walkthrough-password"
TOKEN="province-walkthrough-token-0123456789"
pids=()

step() { printf '\n== %s\n' "$*"; }
ctl() { local n=$1; shift; rabbitmqctl -q -n "lgsp-b$n@localhost" "$@"; }

cleanup() {
  status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "kept: $WORK"; fi
  exit $status
}
trap cleanup EXIT

step "1. On each bus, the account the other bus's shovel publishes with: its arrivals exchange only"
arrivals="^${EXCHANGE//./\\.}\\.arrivals\$"
for account in "2 bridge-thanhhoa" "2 bridge-moh" "1 from-national" "3 from-national"; do
  read -r n user <<<"$account"
  ctl "$n" add_user "$user" "$PASSWORD" >/dev/null 2>&1 || ctl "$n" change_password "$user" "$PASSWORD"
  ctl "$n" set_permissions "$user" '^$' "$arrivals" '^$'
  echo "lgsp-b$n: $user may write $arrivals"
done

bridge() {  # name level codes account port arrivals_user
  printf '[[bridges]]\nname = "%s"\nlevel = "%s"\ncodes = %s\nurl = "amqp://%s:%s@127.0.0.1:%s/"\nexchange = "%s"\narrivals_user = "%s"\n' \
    "$1" "$2" "$3" "$4" "$PASSWORD" "$5" "$EXCHANGE" "$6"
}

settings() {  # name, then extra TOML
  local name=$1; shift
  mkdir -p "$WORK/$name"
  cat >"$WORK/$name.toml" <<EOF
[http]
port = ${port[$name]}
[bus]
url = "amqp://guest:guest@127.0.0.1:569${bus[$name]}/"
management_url = "http://guest:guest@127.0.0.1:1569${bus[$name]}/"
exchange = "$EXCHANGE"
[store]
path = "$WORK/$name/store.sqlite3"
[audit]
origin = "lgsp-adapter/$name.walkthrough"
checkpoint_interval_s = 2
[[agencies]]
code = "${code[$name]}"
name = "$name"
[agencies.endpoint]
url = "http://127.0.0.1:$system_port/inbox"
$*
EOF
}

step "2. Their settings, in $WORK: the routing table of each is its agency and its bridges"
settings ministry "$(bridge national upstream '["*.*.*.H56", "*.*.*.G22"]' bridge-moh 5692 from-national)"
hub_bridges="$(bridge thanhhoa downstream '["*.*.*.H56"]' from-national 5691 bridge-thanhhoa)
$(bridge moh downstream '["*.*.*.G12"]' from-national 5693 bridge-moh)"
settings hub "$hub_bridges"
witness_key="$(lgsp-adapter witness public-key --config "$WORK/hub.toml")"
settings province "[[clients]]
name = \"qlvb-vp-ubnd\"
token = \"$TOKEN\"
agencies = [\"000.00.00.H56\"]
[[audit.witnesses]]
url = \"http://127.0.0.1:${port[hub]}/witness\"
verifier_key = \"$witness_key\"
$(bridge national upstream '["*.*.*.G12", "*.*.*.G22"]' bridge-thanhhoa 5692 from-national)"
echo "province.toml (witnessed by the hub: $witness_key), hub.toml, ministry.toml"

step "3. Each bus's exchanges and queues, before any shovel publishes to them"
for name in ministry hub province; do
  lgsp-adapter declare --config "$WORK/$name.toml" >/dev/null
  echo "$name: declared on lgsp-b${bus[$name]}"
done

step "4. The agencies' system and the province's daemon; the hub witnesses the province's log"
AGENCY_SYSTEM_HOST=127.0.0.1 AGENCY_SYSTEM_PORT=$system_port \
  python "$here/docker/agency_system.py" >"$WORK/agency-system.log" 2>&1 &
pids+=($!)
start() {
  lgsp-adapter serve --config "$WORK/$1.toml" 2>"$WORK/$1.log" &
  pids+=($!)
  for _ in $(seq 1 60); do
    lgsp-adapter check --config "$WORK/$1.toml" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  lgsp-adapter check --config "$WORK/$1.toml" || { tail -20 "$WORK/$1.log"; exit 1; }
}
start province
log_key="$(lgsp-adapter audit public-key --config "$WORK/province.toml" 2>/dev/null)"
settings hub "$hub_bridges
[witness]
logs = [{verifier_keys = [\"$log_key\"]}]"
start hub
start ministry
echo "three daemons serving; the hub witnesses $log_key"

step "5. The provincial office's system sends a document to the Ministry of Health"
letter="$(sed 's#<edXML:OrganId>000.00.12.H56</edXML:OrganId>#<edXML:OrganId>000.00.00.G12</edXML:OrganId>#' "$here/examples/edoc-new-thanh-hoa.edxml" \
  | python -c 'import re, sys; t = sys.stdin.read(); print(re.sub(r"(</edXML:To>)\s*<edXML:To>.*</edXML:To>", r"\1", t, flags=re.S), end="")')"
answer="$(curl -sS --fail-with-body -X POST "http://127.0.0.1:${port[province]}/v1/packets" \
  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/xml" --data-binary "$letter")"
echo "$answer"
packet_id="$(python -c 'import json, sys; print(json.loads(sys.argv[1])["packet_id"])' "$answer")"

step "6. Across two shovels to the ministry's system, and its receipt back: each side's log"
for _ in $(seq 1 120); do
  shown="$(lgsp-adapter audit show "$packet_id" --config "$WORK/province.toml" 2>/dev/null || true)"
  grep -q '^to         000.00.00.G12: delivered' <<<"$shown" && break
  sleep 0.5
done
echo "-- the province's log"
lgsp-adapter audit show "$packet_id" --config "$WORK/province.toml"
echo "-- the ministry's log"
lgsp-adapter audit show "$packet_id" --config "$WORK/ministry.toml"
grep -q "^$packet_id " "$WORK/agency-system.log" \
  || { echo "error: the ministry's system did not get $packet_id" >&2; exit 1; }

step "7. One file proves the journey across both logs, offline"
lgsp-adapter audit bundle "$packet_id" -o "$WORK/province-side.json" --config "$WORK/province.toml"
lgsp-adapter audit bundle "$packet_id" -o "$WORK/ministry-side.json" --config "$WORK/ministry.toml"
lgsp-adapter audit journey "$WORK/province-side.json" "$WORK/ministry-side.json" -o "$WORK/journey.json"
lgsp-adapter audit verify-bundle "$WORK/journey.json" --witness-key "$witness_key"

step "8. The province's log verifies, and the hub vouches for it"
for _ in $(seq 1 60); do
  verified="$(lgsp-adapter audit verify --config "$WORK/province.toml" 2>/dev/null || true)"
  grep -q "vouches up to" <<<"$verified" && break
  sleep 1
done
lgsp-adapter audit verify --config "$WORK/province.toml"
lgsp-adapter audit verify --config "$WORK/province.toml" | grep -q "witness .* vouches up to" \
  || { echo "error: the hub did not cosign the province's log" >&2; exit 1; }

step "Done: a document crossed three buses and two levels, proved on both sides, witnessed"
