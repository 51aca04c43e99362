# PostgreSQL 15 and PgBouncer in a run directory, as an unprivileged system user
# (postgres refuses to run as root). Sourced after stack.sh.
# shellcheck shell=bash

KG_PG_USER=${KG_PG_USER:-keygate-pg}

kg_pg_user() {
  if [[ $(id -u) -ne 0 ]]; then id -un; return; fi
  id "$KG_PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$KG_PG_USER"
  echo "$KG_PG_USER"
}

kg_as_pg() { # command…
  local user
  user=$(kg_pg_user)
  if [[ $(id -u) -eq 0 ]]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

# kg_start_postgres RUN_DIR PORT: cluster in RUN_DIR/pg, unix socket in RUN_DIR/pg-socket.
# Local connections (unix socket, 127.0.0.1) use trust: this cluster is for dev and tests only.
kg_start_postgres() {
  local run=$1 port=$2 user
  user=$(kg_pg_user)
  mkdir -p "$run/pg-socket"
  chown "$user" "$run/pg-socket"
  if [[ ! -s $run/pg/PG_VERSION ]]; then
    mkdir -p "$run/pg"
    chown "$user" "$run/pg"
    chmod 700 "$run/pg"
    kg_as_pg initdb -D "$run/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null || kg_die "initdb failed"
  fi
  if ! kg_as_pg pg_ctl -D "$run/pg" status >/dev/null 2>&1; then
    kg_as_pg pg_ctl -D "$run/pg" -l "$run/pg/server.log" -w -t 30 \
      -o "-p $port -k $run/pg-socket -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null \
      || { tail -20 "$run/pg/server.log" >&2; kg_die "PostgreSQL did not start"; }
  fi
}

kg_stop_postgres() {
  local run=$1
  [[ -s $run/pg/postmaster.pid ]] || return 0
  kg_as_pg pg_ctl -D "$run/pg" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# kg_psql RUN_DIR PORT DB SQL…
kg_psql() {
  local run=$1 port=$2 db=$3
  shift 3
  psql -X -q -v ON_ERROR_STOP=1 -h "$run/pg-socket" -p "$port" -U postgres -d "$db" "$@"
}

# kg_create_database RUN_DIR PORT NAME: role NAME (login) owning database NAME; idempotent.
kg_create_database() {
  local run=$1 port=$2 name=$3
  kg_psql "$run" "$port" postgres -tc "SELECT 1 FROM pg_roles WHERE rolname = '$name'" | grep -q 1 \
    || kg_psql "$run" "$port" postgres -c "CREATE ROLE \"$name\" LOGIN"
  kg_psql "$run" "$port" postgres -tc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
    || kg_psql "$run" "$port" postgres -c "CREATE DATABASE \"$name\" OWNER \"$name\""
  # Session defaults hold through a transaction-pooling PgBouncer (they are the role's).
  kg_psql "$run" "$port" postgres -c "ALTER ROLE \"$name\" SET statement_timeout = '5s'" -c "ALTER ROLE \"$name\" SET timezone = 'UTC'"
}

# kg_start_pgbouncer RUN_DIR PORT PG_PORT POOL_SIZE ROLE…: transaction pooling in front
# of the cluster (any database name is forwarded), unix socket in RUN_DIR/pgbouncer, for
# the listed login roles. The workers connect here.
kg_start_pgbouncer() {
  local run=$1 port=$2 pg_port=$3 pool=$4 user dir=$1/pgbouncer role
  shift 4
  user=$(kg_pg_user)
  mkdir -p "$dir"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=$run/pg-socket port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
; the shared, bounded pool: at most this many server connections per user/database
default_pool_size = $pool
max_db_connections = $pool
max_client_conn = 500
; fail fast while PostgreSQL is down instead of queueing clients for minutes
server_connect_timeout = 2
server_login_retry = 1
query_wait_timeout = 3
ignore_startup_parameters = extra_float_digits
INI
  : > "$dir/userlist.txt"
  for role in "$@"; do printf '"%s" ""\n' "$role" >> "$dir/userlist.txt"; done
  chown -R "$user" "$dir"
  if [[ -s $dir/pgbouncer.pid ]] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
    kill -HUP "$(cat "$dir/pgbouncer.pid")"
    return 0
  fi
  kg_as_pg pgbouncer -d "$dir/pgbouncer.ini" || kg_die "PgBouncer did not start (log: $dir/pgbouncer.log)"
  local i
  for i in $(seq 1 50); do
    [[ -S $dir/.s.PGSQL.$port ]] && return 0
    sleep 0.1
  done
  kg_die "PgBouncer socket did not appear (log: $dir/pgbouncer.log)"
}

kg_stop_pgbouncer() {
  local dir=$1/pgbouncer pid i
  [[ -s $dir/pgbouncer.pid ]] || return 0
  pid=$(cat "$dir/pgbouncer.pid")
  kill -INT "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
