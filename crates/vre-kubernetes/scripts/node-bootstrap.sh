# The node bootstrap vre puts in every node's user data; the generated
# header above sets ROLE, CLUSTER, K8S_VERSION, K8S_MINOR,
# INSTALL_PACKAGES, JOIN_ATTEMPTS and SSH_USER.
#
# cloud-init runs it once from runcmd with the node's kubeadm command:
#   bootstrap.sh kubeadm init --config /etc/kubernetes/vre/kubeadm.yaml
#   bootstrap.sh kubeadm join --config /etc/kubernetes/vre/kubeadm.yaml
# It prepares the node (kernel settings; containerd and the pinned
# Kubernetes packages unless the image has them), then runs that command
# with retries. Its output is in /var/log/cloud-init-output.log.

DONE=/etc/kubernetes/vre/bootstrapped

log() {
  echo "vre-bootstrap[${CLUSTER}/${ROLE}]: $*" >&2
}

# retry ATTEMPTS FIRST_DELAY_SECONDS COMMAND...: runs COMMAND until it
# succeeds, doubling the delay between attempts (at most 5 minutes).
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      log "giving up after ${n} attempts: $*"
      return 1
    fi
    log "attempt ${n} of ${attempts} failed: $*; retrying in ${delay}s"
    sleep "$delay"
    n=$((n + 1))
    delay=$((delay * 2 > 300 ? 300 : delay * 2))
  done
}

apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -q -y \
    -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold "$@"
}

prepare_kernel() {
  cat >/etc/modules-load.d/vre-kubernetes.conf <<'MODULES'
overlay
br_netfilter
MODULES
  modprobe overlay
  modprobe br_netfilter
  cat >/etc/sysctl.d/99-vre-kubernetes.conf <<'SYSCTL'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
SYSCTL
  sysctl --system >/dev/null
  # the kubelet refuses to run with swap on
  swapoff -a
  sed -ri '/\sswap\s/ s/^([^#])/#\1/' /etc/fstab
}

install_containerd() {
  retry 8 10 apt_get update
  retry 8 10 apt_get install apt-transport-https ca-certificates curl gpg containerd
  mkdir -p /etc/containerd
  containerd config default >/etc/containerd/config.toml
  # kubeadm configures the kubelet with the systemd cgroup driver
  sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
  systemctl restart containerd
}

install_kubernetes() {
  local repo="https://pkgs.k8s.io/core:/stable:/${K8S_MINOR}/deb/"
  local keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
  local key_file
  key_file=$(mktemp)
  install -d -m 0755 /etc/apt/keyrings
  retry 8 10 curl -fsSL -o "$key_file" "${repo}Release.key"
  gpg --batch --yes --dearmor -o "$keyring" "$key_file"
  rm -f "$key_file"
  chmod 0644 "$keyring"
  echo "deb [signed-by=${keyring}] ${repo} /" >/etc/apt/sources.list.d/kubernetes.list
  retry 8 10 apt_get update
  local pkg
  pkg=$(apt-cache madison kubeadm | awk -v want="${K8S_VERSION}-" 'index($3, want) == 1 { print $3; exit }')
  if [[ -z $pkg ]]; then
    log "kubeadm ${K8S_VERSION} is not in ${repo}; set kubernetes.version to a released patch version"
    return 1
  fi
  retry 8 10 apt_get install "kubelet=${pkg}" "kubeadm=${pkg}" "kubectl=${pkg}" kubernetes-cni cri-tools
  apt-mark hold kubelet kubeadm kubectl >/dev/null
}

start_runtime() {
  systemctl enable --now containerd
  systemctl enable kubelet
  printf 'runtime-endpoint: unix:///var/run/containerd/containerd.sock\n' >/etc/crictl.yaml
}

# `kubeadm reset` empties /etc/kubernetes/pki; on the master that is where
# the CA vre generated was placed (kubeadm init uses a CA it finds there),
# so it is put back for the next attempt.
reset_keeping_ca() {
  local keep
  keep=$(mktemp -d)
  if [[ -f /etc/kubernetes/pki/ca.key ]]; then
    cp -p /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/ca.key "$keep/"
  fi
  kubeadm reset --force || true
  if [[ -f $keep/ca.key ]]; then
    install -d -m 0755 /etc/kubernetes/pki
    cp -p "$keep/ca.crt" "$keep/ca.key" /etc/kubernetes/pki/
  fi
  rm -rf "$keep"
}

# runs the kubeadm command; a failed attempt is reset so the next can start
# clean. `kubeadm join` pins the CA by hash (caCertHashes in the config)
# and retries discovery until the master answers or its timeout passes.
run_kubeadm() {
  if "$@"; then
    return 0
  fi
  reset_keeping_ca
  return 1
}

# kubectl for the SSH user on the master, as KubeNow did
admin_kubeconfig_for_ssh_user() {
  local home group
  home=$(getent passwd "$SSH_USER" | cut -d: -f6) || return 0
  [[ -n $home ]] || return 0
  group=$(id -gn "$SSH_USER")
  install -d -m 0700 -o "$SSH_USER" -g "$group" "${home}/.kube"
  install -m 0600 -o "$SSH_USER" -g "$group" /etc/kubernetes/admin.conf "${home}/.kube/config"
}

main() {
  if [[ $# -lt 2 || $1 != kubeadm ]]; then
    log "usage: $0 kubeadm init|join --config FILE"
    return 2
  fi
  if [[ -e $DONE ]]; then
    log "already bootstrapped"
    return 0
  fi
  prepare_kernel
  if [[ $INSTALL_PACKAGES == true ]]; then
    install_containerd
    install_kubernetes
  fi
  start_runtime
  case $2 in
    init)
      retry 3 30 run_kubeadm "$@"
      admin_kubeconfig_for_ssh_user
      ;;
    join)
      retry "$JOIN_ATTEMPTS" 30 run_kubeadm "$@"
      ;;
    *)
      log "unknown kubeadm command: $2"
      return 2
      ;;
  esac
  touch "$DONE"
  log "bootstrapped as ${ROLE}"
}

main "$@"
