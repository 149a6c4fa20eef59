#!/usr/bin/env bash
# moto (the AWS emulator) on 127.0.0.1 for vre-aws's integration tests.
#
#   moto.sh install   # venv + `pip install 'moto[server]'` into $VRE_MOTO_CACHE (skips if present)
#   moto.sh start     # install if needed, start moto_server, wait until it answers, print the endpoint
#   moto.sh stop      # kill exactly the PID recorded in $VRE_MOTO_RUN/moto.pid
#   moto.sh reset     # POST /moto-api/reset (forget every resource)
#   moto.sh env       # print `export VRE_TEST_AWS_ENDPOINT=...`
#   moto.sh status    # say whether it runs
#
# Every command is idempotent: start on a running server only prints the
# endpoint, stop on a stopped one does nothing.
#
# Env: VRE_MOTO_CACHE (default ~/.cache/vre-moto), VRE_MOTO_RUN (default
#      /tmp/vre-moto-run), VRE_MOTO_PORT (5000), VRE_MOTO_VERSION (pip
#      requirement suffix, default empty = latest, e.g. "==5.1.22").
#
# Then: VRE_TEST_AWS_ENDPOINT=http://127.0.0.1:5000 cargo test -p vre-aws -- --include-ignored
set -euo pipefail

CACHE=${VRE_MOTO_CACHE:-$HOME/.cache/vre-moto}
VENV=$CACHE/venv
RUN=${VRE_MOTO_RUN:-/tmp/vre-moto-run}
PORT=${VRE_MOTO_PORT:-5000}
HOST=127.0.0.1
PIDFILE=$RUN/moto.pid
LOG=$RUN/moto.log
ENDPOINT="http://$HOST:$PORT"

die() { echo "moto.sh: $*" >&2; exit 1; }

running_pid() {
  [[ -f $PIDFILE ]] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

answers() {
  python3 - "$ENDPOINT" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=2).read()
except Exception:
    sys.exit(1)
EOF
}

cmd_install() {
  if [[ -x $VENV/bin/moto_server ]]; then return 0; fi
  mkdir -p "$CACHE"
  echo "installing moto[server] into $VENV (~1 min)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]${VRE_MOTO_VERSION:-}"
  [[ -x $VENV/bin/moto_server ]] || die "pip did not install moto_server into $VENV/bin"
}

cmd_start() {
  if running_pid >/dev/null; then
    echo "$ENDPOINT"
    return 0
  fi
  cmd_install
  mkdir -p "$RUN"
  if answers; then
    die "something else already answers on $ENDPOINT; stop it or set VRE_MOTO_PORT"
  fi
  # reject unknown AMI ids as EC2 does (moto accepts any id otherwise)
  MOTO_ENABLE_AMI_VALIDATION=${MOTO_ENABLE_AMI_VALIDATION:-true} \
    nohup "$VENV/bin/moto_server" -H "$HOST" -p "$PORT" >"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 100); do
    if answers; then
      echo "$ENDPOINT"
      return 0
    fi
    running_pid >/dev/null || { tail -n 20 "$LOG" >&2; die "moto_server exited at start (log: $LOG)"; }
    sleep 0.2
  done
  cmd_stop
  die "moto_server did not answer on $ENDPOINT within 20 s (log: $LOG)"
}

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  fi
  rm -f "$PIDFILE"
}

cmd_reset() {
  running_pid >/dev/null || die "moto is not running; run \`$0 start\` first"
  python3 - "$ENDPOINT" <<'EOF'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/moto-api/reset", data=b"", method="POST"), timeout=10).read()
EOF
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    echo "moto_server running (pid $pid) on $ENDPOINT"
  else
    echo "moto_server not running"
    return 1
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  reset) cmd_reset ;;
  env) echo "export VRE_TEST_AWS_ENDPOINT=$ENDPOINT" ;;
  status) cmd_status ;;
  *) die "usage: $0 install|start|stop|reset|env|status" ;;
esac
