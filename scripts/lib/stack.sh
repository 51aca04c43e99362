# Shared by scripts/dev-up, scripts/dev-down, scripts/test and scripts/bench: one way
# to install, build and start the stack (keygate pool + nginx) in a run directory.
# shellcheck shell=bash

KG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

kg_say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
kg_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the stack needs, by the command or file that shows each is there.
kg_install_packages() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  [[ -f /usr/include/fcgiapp.h ]] || missing+=(libfcgi-dev)
  [[ -f /usr/include/postgresql/libpq-fe.h ]] || missing+=(libpq-dev)
  [[ -f /usr/include/openssl/evp.h ]] || missing+=(libssl-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  command -v pgbouncer >/dev/null || missing+=(pgbouncer)
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=(postgresql-15)
  command -v psql >/dev/null || missing+=(postgresql-client-15)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  command -v perl >/dev/null || missing+=(perl)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v node >/dev/null || missing+=(nodejs)   # runs docs/examples/javascript_example.mjs
  # The tests, the bench's reports and the examples use Python; the tests may need a venv.
  command -v python3 >/dev/null || missing+=(python3)
  command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if ((${#missing[@]})); then
    kg_say "installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # policy-rc.d may refuse service starts here; keygate runs its own instances anyway.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  export PATH="/opt/swift/usr/bin:/usr/lib/postgresql/15/bin:$PATH"
  command -v swift >/dev/null || kg_die "Swift is not installed (expected /opt/swift)"
}

# Builds keygate; $1 = debug|release. Prints the binary's path.
kg_build() {
  local mode=$1
  kg_say "building keygate ($mode)"
  local flags=()
  # Release: the Swift runtime linked in (no PLT hop on every retain/release, one file to deploy).
  [[ $mode == release ]] && flags=(--static-swift-stdlib)
  (cd "$KG_ROOT" && swift build -c "$mode" "${flags[@]}" --product keygate >&2) || kg_die "build failed"
  echo "$KG_ROOT/.build/$mode/keygate"
}

# Every ancestor of $1 must be searchable by unprivileged users (nginx's www-data
# workers reach the pool's socket, PostgreSQL's user its data directory).
kg_ensure_traversable() {
  local dir
  dir=$(cd "$1" && pwd)
  while [[ $dir != / ]]; do
    if [[ $(stat -c %A "$dir") != *[xt] ]]; then
      kg_say "granting search (o+x) on $dir so services can reach $1"
      chmod o+x "$dir"
    fi
    dir=$(dirname "$dir")
  done
}

# Self-signed certificate for 127.0.0.1/localhost in $1/tls (kept across runs).
kg_make_certificate() {
  local tls=$1/tls
  [[ -s $tls/cert.pem && -s $tls/key.pem ]] && return 0
  mkdir -p "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null || kg_die "openssl could not make a certificate"
  chmod 600 "$tls/key.pem"
}

kg_pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# kg_start_keygate RUN_DIR BINARY: starts the pool with RUN_DIR/keygate.conf unless a
# master from the same binary already runs there.
kg_start_keygate() {
  local run=$1 bin=$2
  if kg_pid_alive "$run/keygate.pid"; then
    if [[ $bin -nt $run/keygate.pid ]]; then
      kg_say "keygate binary is newer than the running pool: restarting it"
      kg_stop_keygate "$run"
    else
      kg_say "keygate already running (pid $(cat "$run/keygate.pid"))"
      return 0
    fi
  fi
  "$bin" check-config --config "$run/keygate.conf" >/dev/null || kg_die "keygate configuration is not valid"
  setsid "$bin" serve --config "$run/keygate.conf" >>"$run/keygate.log" 2>&1 < /dev/null &
  local i
  for i in $(seq 1 100); do
    [[ -S $run/keygate.sock ]] && kg_pid_alive "$run/keygate.pid" && return 0
    sleep 0.1
  done
  tail -n 20 "$run/keygate.log" >&2
  kg_die "keygate did not start (log: $run/keygate.log)"
}

kg_stop_keygate() {
  local run=$1 pid i
  kg_pid_alive "$run/keygate.pid" || return 0
  pid=$(cat "$run/keygate.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# kg_start_nginx RUN_DIR ENV_FILE [EXTRA_INCLUDE]: renders and (re)starts nginx.
kg_start_nginx() {
  local run=$1 env_file=$2 extra=${3:-}
  mkdir -p "$run/nginx-tmp"
  local user_line=""
  [[ $(id -u) -eq 0 ]] && user_line="user www-data;"
  RUN_DIR=$run NGINX_USER_LINE=$user_line EXTRA_INCLUDE=$extra \
    "$KG_ROOT/scripts/render-nginx" "$env_file" "$run/nginx" --with-main
  nginx -t -q -c "$run/nginx/nginx.conf" -p "$run" -e "$run/nginx-error.log" || kg_die "nginx configuration test failed"
  if kg_pid_alive "$run/nginx.pid"; then
    nginx -s reload -c "$run/nginx/nginx.conf" -p "$run" -e "$run/nginx-error.log"
  else
    nginx -c "$run/nginx/nginx.conf" -p "$run" -e "$run/nginx-error.log"
  fi
}

kg_stop_nginx() {
  local run=$1 pid i
  kg_pid_alive "$run/nginx.pid" || return 0
  pid=$(cat "$run/nginx.pid")
  kill -QUIT "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# kg_wait_ok URL CA_FILE: waits until URL answers 200.
kg_wait_ok() {
  local url=$1 ca=$2 i
  for i in $(seq 1 150); do
    curl -fsS --cacert "$ca" -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  kg_die "$url did not answer 200"
}

# kg_make_pepper FILE: a 48-byte random secret, base64, mode 0600, kept across runs
# (a new pepper would invalidate every stored key).
kg_make_pepper() {
  [[ -s $1 ]] && return 0
  (umask 077 && openssl rand -base64 48 > "$1") || kg_die "cannot write the pepper $1"
}
