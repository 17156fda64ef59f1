#!/usr/bin/env bash
# Two daemons on one machine, on RabbitMQ and PostgreSQL, exchanging one document: the steps of
# docs/operations.md ("Two daemons on RabbitMQ and PostgreSQL"), run for you and checked.
#
#   scripts/two-daemons.sh            # from the project, with its virtualenv made (make .venv)
#
# The province's daemon serves the provincial office; the commune's daemon serves a commune.
# Each has its own PostgreSQL database (daemons serving different agencies never share one;
# replicas of one daemon do). The document goes province -> RabbitMQ -> commune -> the
# commune's system (a small program that answers 200), and the commune's receipt comes back.
# Everything is made under $WORK and removed at the end (databases included) unless KEEP=1;
# the exchange and the two agencies' queues stay on the broker, as a daemon's would.
#
# Settings, from the environment:
#   AMQP_URL   the broker, default amqp://guest:guest@127.0.0.1:5672/
#   PG_URL     a PostgreSQL server's maintenance database, default
#              postgresql://postgres@127.0.0.1:5432/postgres (it creates two databases there)
#   EXCHANGE   the bus exchange, default lgsp.walkthrough
#   PROVINCE_PORT, COMMUNE_PORT, SYSTEM_PORT   where the daemons and the agencies' system
#              listen on loopback, default 18081, 18082, 18083
#   WORK       the working folder, default a new temporary one
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PATH="$here/.venv/bin:$PATH"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
PG_URL="${PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
EXCHANGE="${EXCHANGE:-lgsp.walkthrough}"
WORK="${WORK:-$(mktemp -d -t lgsp-two-daemons.XXXXXX)}"
suffix="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
PROVINCE_DB="lgsp_province_$suffix"
COMMUNE_DB="lgsp_commune_$suffix"
server="${PG_URL%/*}"
province_port="${PROVINCE_PORT:-18081}"
commune_port="${COMMUNE_PORT:-18082}"
system_port="${SYSTEM_PORT:-18083}"
TOKEN="province-walkthrough-token-0123456789"
pids=()

step() { printf '\n== %s\n' "$*"; }

cleanup() {
  status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then
    dropdb --if-exists --force --maintenance-db="$PG_URL" "$PROVINCE_DB" 2>/dev/null || true
    dropdb --if-exists --force --maintenance-db="$PG_URL" "$COMMUNE_DB" 2>/dev/null || true
    rm -rf "$WORK"
  else
    echo "kept: $WORK, databases $PROVINCE_DB and $COMMUNE_DB"
  fi
  exit $status
}
trap cleanup EXIT

step "1. A database for each daemon, on $server"
createdb --maintenance-db="$PG_URL" "$PROVINCE_DB"
createdb --maintenance-db="$PG_URL" "$COMMUNE_DB"
echo "$PROVINCE_DB, $COMMUNE_DB"

step "2. Their settings, in $WORK"
mkdir -p "$WORK/province" "$WORK/commune"
cat >"$WORK/province.toml" <<EOF
[http]
port = $province_port
[bus]
url = "$AMQP_URL"
exchange = "$EXCHANGE"
[store]
url = "$server/$PROVINCE_DB"
path = "$WORK/province/store"     # the audit signing key is kept beside it
[[agencies]]
code = "000.00.00.H56"
name = "Văn phòng UBND tỉnh Thanh Hóa"
[agencies.endpoint]
url = "http://127.0.0.1:$system_port/inbox"
[[known_agencies]]
code = "000.21.00.H56"
name = "UBND xã Quảng Phú"
[[clients]]
name = "qlvb-vp-ubnd"
token = "$TOKEN"
agencies = ["000.00.00.H56"]
EOF
cat >"$WORK/commune.toml" <<EOF
[http]
port = $commune_port
[bus]
url = "$AMQP_URL"
exchange = "$EXCHANGE"
[store]
url = "$server/$COMMUNE_DB"
path = "$WORK/commune/store"
[[agencies]]
code = "000.21.00.H56"
name = "UBND xã Quảng Phú"
[agencies.endpoint]
url = "http://127.0.0.1:$system_port/inbox"
[[known_agencies]]
code = "000.00.00.H56"
name = "Văn phòng UBND tỉnh Thanh Hóa"
EOF
echo "province.toml, commune.toml"

step "3. The schemas (the daemons would make them at start; an upgrade runs this first)"
lgsp-adapter migrate --config "$WORK/province.toml"
lgsp-adapter migrate --config "$WORK/commune.toml"

step "4. The agencies' system, and both daemons"
AGENCY_SYSTEM_HOST=127.0.0.1 AGENCY_SYSTEM_PORT=$system_port \
  python "$here/docker/agency_system.py" >"$WORK/agency-system.log" 2>&1 &
pids+=($!)
lgsp-adapter serve --config "$WORK/commune.toml" 2>"$WORK/commune.log" &
pids+=($!)
lgsp-adapter serve --config "$WORK/province.toml" 2>"$WORK/province.log" &
pids+=($!)
for name in commune province; do
  for _ in $(seq 1 60); do
    lgsp-adapter check --config "$WORK/$name.toml" >/dev/null 2>&1 && break
    sleep 0.5
  done
  lgsp-adapter check --config "$WORK/$name.toml" || { tail -20 "$WORK/$name.log"; exit 1; }
done

step "5. The provincial office's system submits a letter to the commune"
answer="$(curl -sS --fail-with-body -X POST "http://127.0.0.1:$province_port/v1/packets" \
  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/xml" \
  --data-binary @"$here/docker/letter-to-commune.edxml")"
echo "$answer"
packet_id="$(python -c 'import json, sys; print(json.loads(sys.argv[1])["packet_id"])' "$answer")"

step "6. Delivered to the commune's system, and the province knows it (its receipt)"
for _ in $(seq 1 60); do
  # Read whole, then searched: grep -q stops reading at the match, and with pipefail the
  # writer's broken pipe would fail the pipeline (and the wait go on to its end).
  shown="$(lgsp-adapter audit show "$packet_id" --config "$WORK/province.toml" 2>/dev/null || true)"
  grep -q '^to         000.21.00.H56: delivered' <<<"$shown" && break
  sleep 0.5
done
lgsp-adapter audit show "$packet_id" --config "$WORK/province.toml"
grep -q "^$packet_id " "$WORK/agency-system.log" \
  || { echo "error: the commune's system did not get $packet_id" >&2; exit 1; }
echo "the commune's system got it: $(grep "^$packet_id " "$WORK/agency-system.log")"

step "7. Both audit logs verify (a checkpoint signed first, as the daemons do every minute)"
for name in province commune; do
  lgsp-adapter audit checkpoint --config "$WORK/$name.toml"
  lgsp-adapter audit verify --config "$WORK/$name.toml"
done

step "Done: a letter crossed from the province's daemon to the commune's on RabbitMQ, both stores in PostgreSQL"
