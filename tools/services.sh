#!/usr/bin/env bash
# Installs (from Debian's packages, when absent) and starts the services the tests and
# the demo use: PostgreSQL (MLflow and Optuna storage), Redis (Feast online store),
# Prometheus/promtool and Alertmanager (both started by the local platform, not here).
# Idempotent: whatever already runs is left alone.
set -euo pipefail
PGUSER_NAME=${MAESTRO_PG_USER:-maestro}
PGPASS=${MAESTRO_PG_PASSWORD:-maestro}
DATABASES=${MAESTRO_PG_DATABASES:-"mlflow optuna governance"}

need=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: ${need[*]} missing; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start their own system services on some hosts; ours are managed below.
  # Alertmanager's would hold port 9093 with its own config: the platform runs its own there.
  if [[ " ${need[*]} " == *" prometheus-alertmanager "* ]]; then
    systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
  fi
fi

# PostgreSQL: the distribution's default cluster, started with its own wrapper.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  read -r ver cluster _ < <(pg_lsclusters -h | head -n1)
  if [ -z "${ver:-}" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    pg_createcluster "$ver" main >/dev/null
    cluster=main
  fi
  pg_ctlcluster "$ver" "$cluster" start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "error: PostgreSQL did not start; see /var/log/postgresql" >&2; exit 1; }
fi
psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAt $*"; }
if [ "$(psql_admin "-c \"select 1 from pg_roles where rolname='$PGUSER_NAME'\"")" != 1 ]; then
  psql_admin "-c \"create role $PGUSER_NAME login password '$PGPASS' createdb\""
fi
for db in $DATABASES; do
  if [ "$(psql_admin "-c \"select 1 from pg_database where datname='$db'\"")" != 1 ]; then
    psql_admin "-c \"create database $db owner $PGUSER_NAME\""
  fi
done

# Redis: loopback only, no persistence (test data).
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --logfile "${TMPDIR:-/tmp}/maestro-redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "error: Redis did not start" >&2; exit 1; }
echo "services: PostgreSQL (databases: $DATABASES) and Redis on 127.0.0.1; prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}'), alertmanager $(prometheus-alertmanager --version 2>&1 | head -n1 | awk '{print $3}')"
