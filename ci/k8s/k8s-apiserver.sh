#!/usr/bin/env bash
# Real Kubernetes control plane (v1.20.2, built from Debian 12's `kubernetes`
# source package) on 127.0.0.1: etcd + kube-apiserver + kube-controller-manager
# + kube-scheduler. No kubelet: Node objects can be created by hand, pods get
# scheduled/bound but never run.
#
#   k8s-apiserver.sh build   # build binaries into $VRE_K8S_CACHE/bin (skips if present)
#   k8s-apiserver.sh start   # certs/tokens/kubeconfig + start all 4, wait for /readyz, print kubeconfig path
#   k8s-apiserver.sh stop    # kill exactly the PIDs recorded in $VRE_K8S_RUN/*.pid
#   k8s-apiserver.sh env     # print `export KUBECONFIG=...` and the variables vre-kubernetes' integration tests read
#   k8s-apiserver.sh status  # show which components are running
#
# Set up as kubeadm would, so vre-kubernetes' integration tests see a faithful
# control plane: bootstrap-token authentication, the bootstrapsigner and
# tokencleaner controllers, and pod CIDRs allocated to nodes (flannel needs them).
# The tests read VRE_TEST_KUBECONFIG (admin, token auth) and VRE_TEST_CA_DIR
# (ca.crt + ca.key of the cluster CA, to issue vre's own admin certificate).
#
# Env: VRE_K8S_CACHE (default ~/.cache/vre-k8s), VRE_K8S_RUN (default /tmp/vre-k8s-run),
#      VRE_K8S_PORT (6443), VRE_K8S_ETCD_PORT (2379), VRE_K8S_ETCD_PEER_PORT (2380),
#      VRE_K8S_KCM_PORT (10257), VRE_K8S_SCHED_PORT (10259)
set -euo pipefail

CACHE=${VRE_K8S_CACHE:-$HOME/.cache/vre-k8s}
BIN=$CACHE/bin
RUN=${VRE_K8S_RUN:-/tmp/vre-k8s-run}
API_PORT=${VRE_K8S_PORT:-6443}
ETCD_PORT=${VRE_K8S_ETCD_PORT:-2379}
ETCD_PEER_PORT=${VRE_K8S_ETCD_PEER_PORT:-2380}
KCM_PORT=${VRE_K8S_KCM_PORT:-10257}
SCHED_PORT=${VRE_K8S_SCHED_PORT:-10259}
K8S_VERSION=v1.20.2
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)

die() { echo "k8s-apiserver.sh: $*" >&2; exit 1; }
have_bins() { [[ -x $BIN/kube-apiserver && -x $BIN/kube-controller-manager && -x $BIN/kube-scheduler ]]; }

# ---------------------------------------------------------------- build
cmd_build() {
  if have_bins; then return 0; fi
  local W=$CACHE/build LOG=$CACHE/build.log
  mkdir -p "$W/apt/lists/partial" "$W/apt/cache/archives/partial" "$BIN"
  echo "building kubernetes $K8S_VERSION from Debian source into $BIN (log: $LOG; ~10 min on 2 cores)" >&2
  (
    set -x
    pkgs=(golang-go etcd-server golang-github-modern-go-reflect2-dev)
    if ! dpkg -s "${pkgs[@]}" >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
    fi
    # 1. a private deb-src list made from this machine's own Debian sources
    #    (same URIs and suites, Types: deb-src); /etc/apt is not touched
    mkdir -p "$W/apt/parts"
    : > "$W/apt/parts/src.sources"
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && grep -q '^URIs:.*debian' "$f" || continue
      sed -e 's/^Types:.*/Types: deb-src/' "$f" >> "$W/apt/parts/src.sources"
      echo >> "$W/apt/parts/src.sources"
    done
    { grep -sE '^deb [^ ]*debian' /etc/apt/sources.list || true; } | sed 's/^deb /deb-src /' > "$W/apt/src.list"
    [ -s "$W/apt/parts/src.sources" ] || [ -s "$W/apt/src.list" ] || die "no Debian apt source on this machine to derive a deb-src list from"
    A=(-o Dir::Etc::sourcelist="$W/apt/src.list" -o Dir::Etc::sourceparts="$W/apt/parts" \
             -o Dir::State::Lists="$W/apt/lists" -o Dir::Cache="$W/apt/cache")
    if ! ls "$W"/kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
      apt-get "${A[@]}" update -qq
      (cd "$W" && apt-get "${A[@]}" source --download-only kubernetes)
    fi
    rm -rf "$W"/kubernetes-1.*/
    tar xzf "$W"/kubernetes_*.orig.tar.gz -C "$W"
    srcs=("$W"/kubernetes-1.*/); SRC=${srcs[0]%/}
    # 2. Go >= 1.18 needs reflect2 >= 1.0.2 (the vendored 1.0.1 segfaults at runtime)
    rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$SRC/vendor/github.com/modern-go/reflect2"
    # 3. k8s 1.20 builds in GOPATH mode
    export GO111MODULE=off GOPATH="$W/gopath" GOCACHE="$W/gocache" CGO_ENABLED=0 GOPROXY=off GOFLAGS=
    mkdir -p "$GOPATH/src/k8s.io" && ln -sfn "$SRC" "$GOPATH/src/k8s.io/kubernetes"
    cd "$GOPATH/src/k8s.io/kubernetes"
    # 4. generate pkg/generated/openapi (not shipped in the tarball)
    go build -o "$W/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    set +o pipefail   # xargs grep exits 123 when one batch has no match
    INPUTS=$(find -L pkg cmd plugin vendor -type f -name '*.go' ! -name '*_test.go' \
      | grep -v -E '^vendor/k8s.io/(code-generator|sample-apiserver)/' \
      | xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' \
      | xargs -n1 dirname | LC_ALL=C sort -u | sed 's#^#k8s.io/kubernetes/#' | paste -sd,)
    set -o pipefail
    "$W/openapi-gen" --logtostderr -i "$INPUTS" -p k8s.io/kubernetes/pkg/generated/openapi \
      -O zz_generated.openapi -h hack/boilerplate/boilerplate.generatego.txt \
      -r "$W/openapi-violations.report" 2>/dev/null
    # 5. build with version stamps (kubectl/Helm kubeVersion checks need them)
    LD="-s -w"
    for p in client-go/pkg/version component-base/version; do
      for kv in gitVersion=$K8S_VERSION gitMajor=1 gitMinor=20 gitTreeState=clean buildDate=2021-01-13T13:20:00Z; do
        LD="$LD -X k8s.io/kubernetes/vendor/k8s.io/$p.$kv"; done; done
    TMPOUT=$W/out; mkdir -p "$TMPOUT"
    go build -o "$TMPOUT/" -ldflags "$LD" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler
    mv "$TMPOUT"/kube-apiserver "$TMPOUT"/kube-controller-manager "$TMPOUT"/kube-scheduler "$BIN/"
  ) >"$LOG" 2>&1 || { tail -30 "$LOG" >&2; die "build failed, see $LOG"; }
  have_bins || die "build finished but binaries missing in $BIN"
}

# ---------------------------------------------------------------- helpers
pid_alive() {  # name -> 0 if pid file exists and process runs the expected binary
  local f=$RUN/$1.pid pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1" || return 1
}

spawn() {  # name cmd... : start detached, pid file holds the exec'd daemon's own PID
  local name=$1; shift
  rm -f "$RUN/$name.pid"
  # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" \
    >>"$RUN/logs/$name.log" 2>&1 </dev/null &
  local i
  for i in $(seq 50); do [[ -s $RUN/$name.pid ]] && return 0; sleep 0.1; done
  die "$name did not start"
}

wait_for() {  # name timeout_s cmd... : poll until cmd succeeds
  local name=$1 t=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$name"; then tail -20 "$RUN/logs/$name.log" >&2; die "$name exited, see $RUN/logs/$name.log"; fi
    (( SECONDS < end )) || { tail -20 "$RUN/logs/$name.log" >&2; die "$name not ready after ${t}s"; }
    sleep 0.5
  done
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

gen_pki() {
  local P=$RUN/pki
  [[ -s $P/apiserver.crt && -s $RUN/kubeconfig ]] && return 0
  mkdir -p "$P"; chmod 700 "$P"
  (
    cd "$P"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=vre-k8s-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    cat > apiserver.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
  ) >"$RUN/logs/pki.log" 2>&1 || { cat "$RUN/logs/pki.log" >&2; die "certificate generation failed"; }
  local admin kcm sched
  admin=$(openssl rand -hex 16); kcm=$(openssl rand -hex 16); sched=$(openssl rand -hex 16)
  # static tokens: token,user,uid,"groups"  (all system:masters: this is a test rig)
  cat > "$P/tokens.csv" <<EOF
$admin,admin,admin,"system:masters"
$kcm,system:kube-controller-manager,kcm,"system:masters"
$sched,system:kube-scheduler,sched,"system:masters"
EOF
  chmod 600 "$P/tokens.csv"
  local ca_b64; ca_b64=$(base64 -w0 "$P/ca.crt")
  mkkubeconfig() {
    cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vre
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $ca_b64
users:
- name: $2
  user:
    token: $3
contexts:
- name: vre
  context: {cluster: vre, user: $2, namespace: default}
current-context: vre
EOF
    chmod 600 "$1"
  }
  mkkubeconfig "$RUN/kcm.kubeconfig" kcm "$kcm"
  mkkubeconfig "$RUN/scheduler.kubeconfig" scheduler "$sched"
  mkkubeconfig "$RUN/kubeconfig" admin "$admin"   # written last: marks PKI complete
}

api_ready() {
  local tok; tok=$(awk -F, 'NR==1{print $1}' "$RUN/pki/tokens.csv")
  curl -fsS --max-time 3 --cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $tok" \
    "https://127.0.0.1:$API_PORT/$1" | grep -qx ok
}

# ---------------------------------------------------------------- start/stop
cmd_start() {
  have_bins || die "binaries missing in $BIN; run: $0 build"
  command -v etcd >/dev/null || die "etcd not found (apt-get install etcd-server)"
  mkdir -p "$RUN/logs"
  local all=1 c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || all=0; done
  if (( all )) && api_ready readyz; then echo "$RUN/kubeconfig"; return 0; fi
  gen_pki
  local P=$RUN/pki
  if ! pid_alive etcd; then
    port_free "$ETCD_PORT" || die "port 127.0.0.1:$ETCD_PORT busy (set VRE_K8S_ETCD_PORT)"
    spawn etcd etcd --name vre --data-dir "$RUN/etcd-data" \
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-cluster "vre=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
  fi
  wait_for etcd 30 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
  if ! pid_alive kube-apiserver; then
    port_free "$API_PORT" || die "port 127.0.0.1:$API_PORT busy (set VRE_K8S_PORT)"
    spawn kube-apiserver "$BIN/kube-apiserver" \
      --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
      --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
      --secure-port="$API_PORT" --insecure-port=0 \
      --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
      --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
      --authorization-mode=RBAC --enable-bootstrap-token-auth=true \
      --service-account-issuer=https://kubernetes.default.svc \
      --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
      --api-audiences=https://kubernetes.default.svc \
      --service-cluster-ip-range=10.96.0.0/12 --allow-privileged=true \
      --cert-dir="$RUN/pki/generated" --v=1
  fi
  wait_for kube-apiserver 120 api_ready readyz
  if ! pid_alive kube-controller-manager; then
    spawn kube-controller-manager "$BIN/kube-controller-manager" \
      --kubeconfig="$RUN/kcm.kubeconfig" --authentication-kubeconfig="$RUN/kcm.kubeconfig" \
      --authorization-kubeconfig="$RUN/kcm.kubeconfig" \
      --bind-address=127.0.0.1 --port=0 --secure-port="$KCM_PORT" --cert-dir="$RUN/pki/generated" \
      --leader-elect=false --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
      --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
      --service-cluster-ip-range=10.96.0.0/12 --controllers='*,bootstrapsigner,tokencleaner' \
      --allocate-node-cidrs=true --cluster-cidr=10.244.0.0/16 --v=1
  fi
  if ! pid_alive kube-scheduler; then
    spawn kube-scheduler "$BIN/kube-scheduler" \
      --kubeconfig="$RUN/scheduler.kubeconfig" --authentication-kubeconfig="$RUN/scheduler.kubeconfig" \
      --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
      --bind-address=127.0.0.1 --port=0 --secure-port="$SCHED_PORT" --cert-dir="$RUN/pki/generated" \
      --leader-elect=false --v=1
  fi
  wait_for kube-controller-manager 60 curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler 60 curl -fsSk --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"
  echo "$RUN/kubeconfig"
}

cmd_stop() {
  local i c pid
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do
    c=${COMPONENTS[$i]}
    if pid_alive "$c"; then
      pid=$(<"$RUN/$c.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$RUN/$c.pid"
  done
}

cmd_status() {
  local c rc=0
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$c"; then echo "$c running (pid $(<"$RUN/$c.pid"))"; else echo "$c stopped"; rc=1; fi
  done
  return $rc
}

case ${1:-} in
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  env)
    echo "export KUBECONFIG=$RUN/kubeconfig"
    echo "export VRE_TEST_KUBECONFIG=$RUN/kubeconfig"
    echo "export VRE_TEST_CA_DIR=$RUN/pki"
    ;;
  clean) cmd_stop; rm -rf "$RUN" ;;
  *) echo "usage: $0 build|start|stop|restart|status|env|clean" >&2; exit 2 ;;
esac
