#!/usr/bin/env bash
# A simulated Kubernetes control plane (vre-sim) on 127.0.0.1: one cluster
# whose master booted through the simulator from the user data vre-kubernetes
# generates (`cargo run -p vre-sim --example serve_cluster`). The same
# interface as k8s-apiserver.sh, so vre-kubernetes' integration suite runs
# against both: the simulator must not be kinder than the real thing.
#
#   sim-control-plane.sh start   # build the example, start it, wait for /readyz, print the kubeconfig path
#   sim-control-plane.sh stop    # stop exactly the PID recorded in $VRE_SIM_CP_RUN/serve_cluster.pid
#   sim-control-plane.sh env     # print `export KUBECONFIG=...` and the variables the integration tests read
#   sim-control-plane.sh status  # show whether it runs
#
# The tests read VRE_TEST_KUBECONFIG (cluster-admin, token auth) and
# VRE_TEST_CA_DIR (ca.crt + ca.key of the cluster CA).
#
# Env: VRE_SIM_CP_RUN (default /tmp/vre-sim-cp-run), VRE_SIM_CP_TIME_SCALE
#      (default 0.01: a simulated 20 s takes 0.2 s), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN=${VRE_SIM_CP_RUN:-/tmp/vre-sim-cp-run}
CLUSTER_DIR=$RUN/cluster
TIME_SCALE=${VRE_SIM_CP_TIME_SCALE:-0.01}
NAME=serve_cluster
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/$NAME

die() { echo "sim-control-plane.sh: $*" >&2; exit 1; }

pid_alive() {  # 0 if the pid file names a running serve_cluster
  local f=$RUN/$NAME.pid pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$NAME" || return 1
}

api_ready() {
  local kc=$CLUSTER_DIR/kubeconfig server token
  [[ -s $kc ]] || return 1
  server=$(awk '$1 == "server:" {print $2; exit}' "$kc")
  token=$(awk '$1 == "token:" {print $2; exit}' "$kc")
  [[ -n $server && -n $token ]] || return 1
  curl -fsS --max-time 3 --cacert "$CLUSTER_DIR/pki/ca.crt" -H "Authorization: Bearer $token" \
    "$server/readyz" | grep -qx ok
}

cmd_start() {
  mkdir -p "$RUN"
  if pid_alive && api_ready; then echo "$CLUSTER_DIR/kubeconfig"; return 0; fi
  cmd_stop
  (cd "$ROOT" && cargo build -q -p vre-sim --example "$NAME") || die "cargo build -p vre-sim --example $NAME failed"
  [[ -x $BIN ]] || die "$BIN missing after the build (is CARGO_TARGET_DIR set differently?)"
  rm -f "$CLUSTER_DIR/kubeconfig"
  # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$NAME.pid" \
    "$BIN" "$CLUSTER_DIR" --time-scale "$TIME_SCALE" \
    >"$RUN/$NAME.env" 2>"$RUN/$NAME.log" </dev/null &
  local end=$((SECONDS + 60))
  until api_ready; do
    if [[ -s $RUN/$NAME.pid ]] && ! pid_alive; then
      tail -20 "$RUN/$NAME.log" >&2; die "$NAME exited, see $RUN/$NAME.log"
    fi
    (( SECONDS < end )) || { tail -20 "$RUN/$NAME.log" >&2; die "$NAME not ready after 60s, see $RUN/$NAME.log"; }
    sleep 0.2
  done
  echo "$CLUSTER_DIR/kubeconfig"
}

cmd_stop() {
  local pid
  if pid_alive; then
    pid=$(<"$RUN/$NAME.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$RUN/$NAME.pid"
}

cmd_status() {
  if pid_alive; then echo "$NAME running (pid $(<"$RUN/$NAME.pid"))"; else echo "$NAME stopped"; return 1; fi
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  env)
    printf 'export KUBECONFIG=%q\n' "$CLUSTER_DIR/kubeconfig"
    printf 'export VRE_TEST_KUBECONFIG=%q\n' "$CLUSTER_DIR/kubeconfig"
    printf 'export VRE_TEST_CA_DIR=%q\n' "$CLUSTER_DIR/pki"
    ;;
  clean) cmd_stop; rm -rf "$RUN" ;;
  *) echo "usage: $0 start|stop|restart|status|env|clean" >&2; exit 2 ;;
esac
