# A throwaway PostgreSQL server for the tests, on 127.0.0.1 only (sourced by .ci/run).
#
#   source .ci/postgres.sh && pg_start    # exports HIPSTATS_TEST_POSTGRES=postgresql://...
#   ...                                   # tests/test_postgres.py uses it
#   pg_stop                               # stops the server, removes its folder
#
# Standalone, to run the PostgreSQL tests by hand:  bash .ci/postgres.sh  (prints the export line;
# stop it with  pg_ctl -D DIR stop  as printed).
#
# Debian's postgresql package is installed when no server binaries are found (CI machines reach
# the Debian registry). The server is a new cluster made by initdb in a temporary folder, owned by
# the `postgres` user when run as root (a server refuses to run as root); the system cluster, if
# any, is never touched. A free port is picked; a password login `hipstats` is created so that the
# tests see a URL with a password (to check that it is masked).

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

pg_install() {
  echo "CI: installing Debian's postgresql" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if command -v flock >/dev/null 2>&1 && [ -w /tmp ]; then
    flock /tmp/apt.lock $sudo apt-get update -qq >&2
    flock /tmp/apt.lock $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
  else
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
  fi
}

pg_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

pg_start() {
  local bindir
  bindir=$(pg_bindir) || { pg_install && bindir=$(pg_bindir); } || {
    echo "CI: no PostgreSQL server binaries (initdb) after installing postgresql" >&2; return 1; }
  PG_DIR=$(mktemp -d /tmp/hipstats-pg.XXXXXX)
  local port password as_user=()
  port=$(pg_free_port)
  password=$(python3 -c 'import secrets; print("pw" + secrets.token_hex(8))')
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    as_user=(runuser -u postgres --)
  fi
  printf '%s\n' "$password" > "$PG_DIR/pw"
  [ "$(id -u)" -eq 0 ] && chown postgres "$PG_DIR/pw"
  "${as_user[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U hipstats --pwfile="$PG_DIR/pw" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
    || "${as_user[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U hipstats --pwfile="$PG_DIR/pw" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  rm -f "$PG_DIR/pw"
  "${as_user[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off" start >&2 \
    || { cat "$PG_DIR/server.log" >&2; return 1; }
  PG_CTL="$bindir/pg_ctl"
  PG_AS_USER="${as_user[*]}"
  export HIPSTATS_TEST_POSTGRES="postgresql://hipstats:${password}@127.0.0.1:${port}/postgres"
  echo "CI: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PG_DIR)" >&2
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  if [ -d "$PG_DIR/data" ]; then
    # shellcheck disable=SC2086
    $PG_AS_USER "$PG_CTL" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PG_DIR"
  PG_DIR=""
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # run directly: start one and say how to use and stop it
  set -euo pipefail
  pg_start
  echo "export HIPSTATS_TEST_POSTGRES='$HIPSTATS_TEST_POSTGRES'"
  echo "# stop it: ${PG_AS_USER:+$PG_AS_USER }$PG_CTL -D $PG_DIR/data stop && rm -rf $PG_DIR"
fi
