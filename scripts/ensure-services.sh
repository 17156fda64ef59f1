#!/usr/bin/env bash
# Makes sure the services the tests talk to are listening on loopback:
# RabbitMQ on 127.0.0.1:5672 and PostgreSQL on 127.0.0.1:5432; and that Debian's chromium and
# chromedriver are there for the auditors' page test, and xmlsec1 for the signature cross-checks.
# A service already listening is left alone; a missing one is installed from Debian's packages and
# started when we are root (as on CI), and otherwise we say exactly what to run.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # port, name, seconds
  for _ in $(seq 1 "$3"); do listening "$1" && return 0; sleep 1; done
  echo "error: $2 did not start listening on 127.0.0.1:$1 within $3 s" >&2
  return 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

apt_install() {
  # apt-get update once per run; a fresh machine has no package lists.
  if [ -z "${_apt_updated:-}" ]; then apt-get update -qq; _apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rabbitmq() {
  listening 5672 && { echo "RabbitMQ: listening on 127.0.0.1:5672"; return 0; }
  if ! command -v rabbitmq-server >/dev/null; then
    can_install || { echo "error: RabbitMQ is not running; install and start it: sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached" >&2; return 1; }
    echo "RabbitMQ: installing rabbitmq-server"
    apt_install rabbitmq-server
  fi
  listening 5672 && return 0   # the Debian package may have started it
  echo "RabbitMQ: starting"
  rabbitmq-server -detached
  wait_for 5672 RabbitMQ 90
  echo "RabbitMQ: listening on 127.0.0.1:5672"
}

ensure_postgres() {
  listening 5432 && { echo "PostgreSQL: listening on 127.0.0.1:5432"; return 0; }
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    can_install || { echo "error: PostgreSQL is not running; install and start it: sudo apt-get install -y postgresql && sudo pg_ctlcluster <version> main start" >&2; return 1; }
    echo "PostgreSQL: installing postgresql"
    apt_install postgresql
  fi
  listening 5432 && return 0
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  echo "PostgreSQL: starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for 5432 PostgreSQL 60
  echo "PostgreSQL: listening on 127.0.0.1:5432"
}

ensure_browser() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "Browser: $(chromium --version 2>/dev/null | head -n1)"
    return 0
  fi
  can_install || { echo "note: chromium and chromedriver are missing, so the browser test will skip; install them: sudo apt-get install -y chromium chromium-driver" >&2; return 0; }
  echo "Browser: installing chromium and chromium-driver"
  apt_install chromium chromium-driver
}

ensure_xmlsec1() {
  # The signature tests compare every verdict with Debian's xmlsec1; without it they skip that.
  command -v xmlsec1 >/dev/null && { echo "xmlsec1: $(xmlsec1 --version)"; return 0; }
  can_install || { echo "note: xmlsec1 is missing, so the signature cross-checks will skip; install it: sudo apt-get install -y xmlsec1" >&2; return 0; }
  echo "xmlsec1: installing"
  apt_install xmlsec1
}

ensure_rabbitmq
ensure_postgres
ensure_browser
ensure_xmlsec1
