# Shared by run-against-mailvault and run-against-dovecot (sourced, not run): the load's
# settings, the release build of the load generator, and small helpers.
#
#   MESSAGES      messages to deliver                  (default 5000)
#   CONNECTIONS   concurrent connections per phase     (default 8)
#   USERS         accounts user0001@example.org …      (default 20)
#   SEED          corpus seed                          (default 1)
#   SIZE_MAX      largest message in bytes             (default 1048576: the full mix)
#   REPORT_DIR    where <label>.json goes              (default <repo>/target/loadtest)
#   KEEP_TMP=1    keep the temporary directory (server logs, data) after the run
# Arguments after the script name go to `mailvault-loadtest run` as they are.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MESSAGES="${MESSAGES:-5000}"
CONNECTIONS="${CONNECTIONS:-8}"
USERS="${USERS:-20}"
SEED="${SEED:-1}"
SIZE_MAX="${SIZE_MAX:-1048576}"
REPORT_DIR="${REPORT_DIR:-$repo/target/loadtest}"
# Both servers get the same accounts: userNNNN@example.org with password password-NNNN.
USER_PATTERN='user{i}@example.org'
PASSWORD_PATTERN='password-{i}'

say() { echo "${script_name:-loadtest}: $*" >&2; }
die() { say "$*"; exit 1; }

user_name() { printf 'user%04d@example.org' "$1"; }
user_password() { printf 'password-%04d' "$1"; }

# Builds the load generator (and whatever else is named) in release mode.
build_release() {
  (cd "$repo" && cargo build --release --locked --quiet "$@")
  loadtest_bin="$repo/target/release/mailvault-loadtest"
}

# A TCP port free on loopback right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on 127.0.0.1:$1 (at most $2 seconds) while process
# $3 lives.
wait_for_port() {
  local port="$1" seconds="$2" pid="$3" deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "the server exited before listening on port $port"
    [ "$SECONDS" -lt "$deadline" ] || die "nothing listens on port $port after ${seconds}s"
    sleep 0.2
  done
}

# Sends SIGTERM to $1 and waits (at most 60 s, then SIGKILL).
stop_process() {
  local pid="$1" waited=0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 600 ]; then
      say "process $pid ignored SIGTERM for 60 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  wait "$pid" 2>/dev/null || true
}

# Runs the load test with the common settings; $1 is the label, the rest are endpoint, TLS and
# server-pid arguments, then the script's own arguments.
run_loadtest() {
  local label="$1"
  shift
  mkdir -p "$REPORT_DIR"
  local report="$REPORT_DIR/$label.json"
  say "load: $MESSAGES messages, $CONNECTIONS connections, $USERS users, seed $SEED, size max $SIZE_MAX"
  local status=0
  "$loadtest_bin" run --label "$label" --messages "$MESSAGES" --connections "$CONNECTIONS" --users "$USERS" \
    --seed "$SEED" --size-max "$SIZE_MAX" --user-pattern "$USER_PATTERN" \
    --password-pattern "$PASSWORD_PATTERN" --json "$report" "$@" || status=$?
  say "report: $report"
  return "$status"
}
