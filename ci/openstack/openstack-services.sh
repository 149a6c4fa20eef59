#!/usr/bin/env bash
# Real OpenStack control plane on 127.0.0.1 (keystone, glance, placement, neutron,
# nova with the fake virt driver, optional cinder with cinder's FakeLoggingVolumeDriver),
# backed by a private MariaDB and RabbitMQ instance. Everything runs as ordinary
# processes out of $VRE_OS_RUN; nothing is installed as a system service.
#
#   openstack-services.sh install  # apt: mariadb-server rabbitmq-server; venv with the services
#   openstack-services.sh start    # configs, DBs, db syncs, keystone bootstrap, start all,
#                                  # flavors/image/networks/router; idempotent
#   openstack-services.sh stop     # kill exactly what start started (pid files)
#   openstack-services.sh env      # print OS_* exports (and write $VRE_OS_RUN/clouds.yaml)
#   openstack-services.sh status | clean
#
# Env: VRE_OS_VENV (~/.cache/vre-openstack/venv), VRE_OS_RUN (/tmp/vre-openstack-run),
#      VRE_OS_PASSWORD (secret), VRE_OS_CINDER (1 = also run cinder; default 1)
set -euo pipefail

VENV=${VRE_OS_VENV:-$HOME/.cache/vre-openstack/venv}
RUN=${VRE_OS_RUN:-/tmp/vre-openstack-run}
PW=${VRE_OS_PASSWORD:-secret}
CINDER=${VRE_OS_CINDER:-1}
PY=${VRE_OS_PYTHON:-python3}
H=127.0.0.1
P_KEYSTONE=${VRE_OS_PORT_KEYSTONE:-5050}
P_GLANCE=${VRE_OS_PORT_GLANCE:-9292}
P_NEUTRON=${VRE_OS_PORT_NEUTRON:-9696}
P_NOVA=${VRE_OS_PORT_NOVA:-8774}
P_PLACEMENT=${VRE_OS_PORT_PLACEMENT:-8778}
P_CINDER=${VRE_OS_PORT_CINDER:-8776}
P_MYSQL=${VRE_OS_PORT_MYSQL:-3307}
P_RABBIT=${VRE_OS_PORT_RABBIT:-5673}
P_EPMD=${VRE_OS_PORT_EPMD:-4370}
P_RABBIT_DIST=${VRE_OS_PORT_RABBIT_DIST:-25673}
COMPUTE_HOST=vre-compute-1
DB="mysql+pymysql://os:os@$H:$P_MYSQL"
TRANSPORT="rabbit://guest:guest@$H:$P_RABBIT/"
KS_URL="http://$H:$P_KEYSTONE/v3"
PIP_REQS=(keystone==30.0.0 glance==33.0.0 neutron==29.0.0 openstack-placement==16.0.0
          nova==34.0.0 cinder==29.0.0 python-openstackclient==10.5.0 uWSGI==2.0.31 PyMySQL==1.2.4)
E=$RUN/etc L=$RUN/logs S=$RUN/state

die() { echo "openstack-services.sh: $*" >&2; exit 1; }

# ================================================================ install
FAKEBIND_PY='"""Test-only ML2 mechanism driver: binds every port as OVS, no agent needed."""
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class FakeBindDriver(api.MechanismDriver):
    def initialize(self):
        pass

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for seg in context.segments_to_bind:
            context.set_binding(seg[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: True,
                                 portbindings.OVS_HYBRID_PLUG: False},
                                status="ACTIVE")
            return
'
FAKEBIND_SETUP='from setuptools import setup
setup(name="vre-fakebind", version="0.1", py_modules=["fakebind"],
      entry_points={"neutron.ml2.mechanism_drivers": ["fakebind = fakebind:FakeBindDriver"]})
'

cmd_install() {
  local pkgs=(mariadb-server mariadb-client rabbitmq-server curl)
  if ! dpkg -s "${pkgs[@]}" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null \
      || die "apt-get install ${pkgs[*]} failed"
  fi
  local want; want=$(printf '%s\n' "${PIP_REQS[@]}" "$FAKEBIND_PY" "$FAKEBIND_SETUP" | sha256sum | cut -c1-16)
  [[ -f $VENV/.vre-installed && $(<"$VENV/.vre-installed") == "$want" ]] && return 0
  mkdir -p "$(dirname "$VENV")"
  local log; log=$(dirname "$VENV")/install.log
  {
    [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
    "$VENV/bin/pip" install -q "${PIP_REQS[@]}"
    mkdir -p "$VENV/src/fakebind"
    printf '%s' "$FAKEBIND_PY" >"$VENV/src/fakebind/fakebind.py"
    printf '%s' "$FAKEBIND_SETUP" >"$VENV/src/fakebind/setup.py"
    "$VENV/bin/pip" install -q "$VENV/src/fakebind"
  } >"$log" 2>&1 || { tail -20 "$log" >&2; die "pip install failed, see $log"; }
  echo "$want" >"$VENV/.vre-installed"
}

# ================================================================ process helpers
# pid file = "PID STARTTIME" (starttime from /proc/PID/stat guards against PID reuse)
pid_alive() {
  local f=$RUN/pids/$1.pid pid st
  [[ -s $f ]] || return 1
  read -r pid st <"$f" || true
  [[ -n ${pid:-} && -r /proc/$pid/stat ]] || return 1
  [[ $(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null) == "$st" ]]
}

spawn() {  # name cmd... : detached in its own session; pid file = exec'd daemon's own PID
  local name=$1; shift
  local f=$RUN/pids/$name.pid
  rm -f "$f" "$f.tmp"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$f.tmp" "$@" >>"$L/$name.out" 2>&1 </dev/null &
  local i pid
  for i in $(seq 50); do [[ -s $f.tmp ]] && break; sleep 0.1; done
  pid=$(<"$f.tmp") || die "$name did not start"
  echo "$pid $(awk '{print $22}' "/proc/$pid/stat")" >"$f"; rm -f "$f.tmp"
}

stop_many() {  # names... : TERM each process group we created (in parallel), wait, KILL leftovers
  local name pid st pids=() end
  for name in "$@"; do
    if pid_alive "$name"; then
      read -r pid st <"$RUN/pids/$name.pid"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  end=$((SECONDS + 20))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < end )); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  for name in "$@"; do rm -f "$RUN/pids/$name.pid"; done
}

wait_for() {  # name timeout cmd...
  local name=$1 t=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$name"; then tail -25 "$L/$name.out" >&2; die "$name exited; logs in $L"; fi
    (( SECONDS < end )) || { tail -25 "$L/$name.out" >&2; die "$name not ready after ${t}s; logs in $L"; }
    sleep 0.5
  done
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
need_port() { port_free "$1" || die "port $1 is already in use (${2}); override with VRE_OS_PORT_*"; }
http_up() { curl -sS -o /dev/null --max-time 3 "http://$H:$1/"; }
tcp_up() { (exec 3<>"/dev/tcp/$H/$1") 2>/dev/null; }
sql() { mariadb --no-defaults -uroot --socket="$RUN/mysql/mysql.sock" -e "$1"; }
run_logged() {  # name cmd... : run to completion, log into $L/name.log
  local name=$1; shift
  "$@" >>"$L/$name.log" 2>&1 || { tail -25 "$L/$name.log" >&2; die "$name failed; see $L/$name.log"; }
}

# ================================================================ configs
authtoken() {  # user
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KS_URL
auth_url = $KS_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $PW
region_name = RegionOne
service_token_roles_required = false
EOF
}
svcauth() {  # section user
  cat <<EOF
[$1]
auth_url = $KS_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $PW
region_name = RegionOne
EOF
}
POLICY='[oslo_policy]
enforce_new_defaults = false
enforce_scope = false'

write_configs() {
  mkdir -p "$E"/{keystone,glance,neutron,nova,placement,cinder} "$L" "$S" "$RUN/pids" \
           "$RUN"/keystone/{fernet-keys,credential-keys} "$RUN"/glance/{images,staging,tasks} \
           "$RUN"/{neutron,nova,cinder}/lock "$RUN/nova/state" "$RUN/cinder/state"
  chmod 700 "$RUN"/keystone/{fernet-keys,credential-keys}

  cat >"$E/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $L/keystone.log
[database]
connection = $DB/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = $RUN/keystone/fernet-keys
[fernet_receipts]
key_repository = $RUN/keystone/fernet-keys
[credential]
key_repository = $RUN/keystone/credential-keys
$POLICY
EOF

  cat >"$E/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $L/placement.log
[placement_database]
connection = $DB/placement
[api]
auth_strategy = keystone
$(authtoken placement)
$POLICY
EOF

  cp "$VENV/etc/glance/glance-api-paste.ini" "$E/glance/glance-api-paste.ini"
  cat >"$E/glance/glance-api.conf" <<EOF
[DEFAULT]
log_file = $L/glance-api.log
enabled_backends = fs:file
enabled_import_methods = [glance-direct,web-download]
[database]
connection = $DB/glance
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $RUN/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $RUN/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $RUN/glance/tasks/
$(authtoken glance)
[paste_deploy]
flavor = keystone
config_file = $E/glance/glance-api-paste.ini
[image_import_opts]
image_import_plugins = []
[import_filtering_opts]
# interoperable image import (web-download) from test servers on loopback ephemeral ports
allowed_ports = []

$POLICY
EOF

  cat >"$E/neutron/neutron.conf" <<EOF
[DEFAULT]
log_file = $L/neutron.log
api_paste_config = $VENV/etc/neutron/api-paste.ini
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = fake:/
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
[database]
connection = $DB/neutron
$(authtoken neutron)
$(svcauth nova neutron)
endpoint_type = public
[oslo_concurrency]
lock_path = $RUN/neutron/lock
$POLICY
EOF
  cat >"$E/neutron/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vlan,vxlan,local
tenant_network_types = vxlan
mechanism_drivers = fakebind
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:1000
[ml2_type_flat]
flat_networks = *
EOF

  cp "$VENV/etc/nova/api-paste.ini" "$E/nova/api-paste.ini"
  cat >"$E/nova/nova.conf" <<EOF
[DEFAULT]
transport_url = $TRANSPORT
compute_driver = fake.FakeDriverWithoutFakeNodes
host = $COMPUTE_HOST
my_ip = $H
state_path = $RUN/nova/state
osapi_compute_listen = $H
metadata_listen = $H
enabled_apis = osapi_compute
cpu_allocation_ratio = 16.0
ram_allocation_ratio = 100.0
disk_allocation_ratio = 100.0
[api]
auth_strategy = keystone
[api_database]
connection = $DB/nova_api
[database]
connection = $DB/nova
$(authtoken nova)
$(svcauth placement nova)
$(svcauth neutron nova)
$(svcauth cinder nova)
os_region_name = RegionOne
[glance]
region_name = RegionOne
$(svcauth service_user nova)
# Cinder only lets Nova delete the attachments it made with a service token
# (ConflictNovaUsingAttachment otherwise): volume detach needs this
send_service_user_token = true
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 10
[oslo_concurrency]
lock_path = $RUN/nova/lock
[vnc]
enabled = false
[wsgi]
api_paste_config = $E/nova/api-paste.ini
$POLICY
EOF
  # nova-api under uwsgi reads OS_NOVA_CONFIG_FILES; this one only adds its log file
  printf '[DEFAULT]\nlog_file = %s\n' "$L/nova-api.log" >"$E/nova/nova-api.conf"

  cp "$VENV/etc/cinder/api-paste.ini" "$E/cinder/api-paste.ini"
  cat >"$E/cinder/cinder.conf" <<EOF
[DEFAULT]
transport_url = $TRANSPORT
auth_strategy = keystone
api_paste_config = $E/cinder/api-paste.ini
state_path = $RUN/cinder/state
host = vre-volume-1
my_ip = $H
enabled_backends = fake
glance_api_servers = http://$H:$P_GLANCE
osapi_volume_workers = 1
periodic_interval = 10
[database]
connection = $DB/cinder
$(authtoken cinder)
$(svcauth nova cinder)
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
[oslo_concurrency]
lock_path = $RUN/cinder/lock
$POLICY
EOF
}

# ================================================================ infra: mariadb, rabbitmq
RABBIT_ENV=()
set_rabbit_env() {
  RABBIT_ENV=(env HOME="$RUN/rabbit" RUNNING_UNDER_SYSTEMD=1
    RABBITMQ_MNESIA_BASE="$RUN/rabbit/mnesia" RABBITMQ_LOG_BASE="$L/rabbit"
    RABBITMQ_CONFIG_FILE="$RUN/rabbit/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$RUN/rabbit/enabled_plugins"
    RABBITMQ_NODENAME=vre@localhost RABBITMQ_NODE_IP_ADDRESS=$H RABBITMQ_NODE_PORT="$P_RABBIT"
    RABBITMQ_DIST_PORT="$P_RABBIT_DIST" ERL_EPMD_ADDRESS=$H ERL_EPMD_PORT="$P_EPMD"
    RABBITMQ_PID_FILE="$RUN/rabbit/rabbit.pid"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
}

start_infra() {
  # MariaDB
  if ! pid_alive mariadb; then
    need_port "$P_MYSQL" mariadb
    mkdir -p "$RUN/mysql"
    if [[ ! -d $RUN/mysql/data/mysql ]]; then
      run_logged mariadb-install-db mariadb-install-db --no-defaults --datadir="$RUN/mysql/data" --user=root \
        --auth-root-authentication-method=socket --skip-test-db
    fi
    spawn mariadb /usr/sbin/mariadbd --no-defaults --datadir="$RUN/mysql/data" --user=root \
      --bind-address=$H --port="$P_MYSQL" --socket="$RUN/mysql/mysql.sock" --pid-file="$RUN/mysql/mysqld.pid" \
      --log-error="$L/mariadb.log" --skip-log-bin --skip-name-resolve --max-connections=1000 \
      --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
  fi
  wait_for mariadb 60 mariadb-admin --no-defaults -uroot --socket="$RUN/mysql/mysql.sock" ping
  local d dbs=(keystone glance neutron placement nova_api nova nova_cell0 cinder) q=""
  for d in "${dbs[@]}"; do q+="CREATE DATABASE IF NOT EXISTS $d; "; done
  sql "$q CREATE USER IF NOT EXISTS 'os'@'127.0.0.1' IDENTIFIED BY 'os'; CREATE USER IF NOT EXISTS 'os'@'localhost' IDENTIFIED BY 'os';
       GRANT ALL ON *.* TO 'os'@'127.0.0.1'; GRANT ALL ON *.* TO 'os'@'localhost'; FLUSH PRIVILEGES;"

  # RabbitMQ (own epmd on 127.0.0.1 so that no stray epmd daemon is left behind)
  mkdir -p "$RUN/rabbit/mnesia" "$L/rabbit"
  printf 'listeners.tcp.default = %s:%s\nloopback_users = none\n' $H "$P_RABBIT" >"$RUN/rabbit/rabbitmq.conf"
  echo '[].' >"$RUN/rabbit/enabled_plugins"
  if ! pid_alive epmd; then
    need_port "$P_EPMD" epmd
    spawn epmd env ERL_EPMD_ADDRESS=$H epmd -port "$P_EPMD" -address $H
  fi
  wait_for epmd 10 tcp_up "$P_EPMD"
  set_rabbit_env
  if ! pid_alive rabbitmq; then
    need_port "$P_RABBIT" rabbitmq
    spawn rabbitmq "${RABBIT_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
  fi
  wait_for rabbitmq 90 tcp_up "$P_RABBIT"
}

# ================================================================ db syncs / bootstrap
db_sync() {
  [[ -f $S/dbsync.done ]] && return 0
  local B=$VENV/bin
  ( run_logged keystone-manage "$B/keystone-manage" --config-file "$E/keystone/keystone.conf" db_sync
    run_logged keystone-manage "$B/keystone-manage" --config-file "$E/keystone/keystone.conf" fernet_setup --keystone-user root --keystone-group root
    run_logged keystone-manage "$B/keystone-manage" --config-file "$E/keystone/keystone.conf" credential_setup --keystone-user root --keystone-group root
    run_logged keystone-manage "$B/keystone-manage" --config-file "$E/keystone/keystone.conf" bootstrap \
      --bootstrap-password "$PW" --bootstrap-admin-url "$KS_URL" --bootstrap-internal-url "$KS_URL" \
      --bootstrap-public-url "$KS_URL" --bootstrap-region-id RegionOne ) &
  local j1=$!
  ( run_logged glance-manage "$B/glance-manage" --config-file "$E/glance/glance-api.conf" db_sync
    run_logged placement-manage "$B/placement-manage" --config-file "$E/placement/placement.conf" db sync ) &
  local j2=$!
  ( run_logged neutron-db-manage "$B/neutron-db-manage" --config-file "$E/neutron/neutron.conf" \
      --config-file "$E/neutron/ml2_conf.ini" upgrade heads ) &
  local j3=$!
  ( local N=("$B/nova-manage" --config-file "$E/nova/nova.conf")
    run_logged nova-manage "${N[@]}" api_db sync
    run_logged nova-manage "${N[@]}" cell_v2 map_cell0 --database_connection "$DB/nova_cell0"
    "${N[@]}" cell_v2 list_cells 2>/dev/null | grep -q ' cell1 ' || \
      run_logged nova-manage "${N[@]}" cell_v2 create_cell --name cell1 --database_connection "$DB/nova" --transport-url "$TRANSPORT"
    run_logged nova-manage "${N[@]}" db sync ) &
  local j4=$! j5=""
  if [[ $CINDER == 1 ]]; then
    ( run_logged cinder-manage "$B/cinder-manage" --config-file "$E/cinder/cinder.conf" db sync ) &
    j5=$!
  fi
  local rc=0 j
  for j in $j1 $j2 $j3 $j4 $j5; do wait "$j" || rc=1; done
  (( rc == 0 )) || die "db sync failed (logs in $L)"
  touch "$S/dbsync.done"
}

osenv() {
  cat <<EOF
export OS_AUTH_URL=$KS_URL
export OS_AUTH_TYPE=password
export OS_USERNAME=admin
export OS_PASSWORD=$PW
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
export OS_IDENTITY_API_VERSION=3
export OS_INTERFACE=public
export OS_CLIENT_CONFIG_FILE=$RUN/clouds.yaml
export VRE_OS_CLI=$VENV/bin/openstack
EOF
}

write_clouds_yaml() {
  mkdir -p "$RUN"
  cat >"$RUN/clouds.yaml" <<EOF
clouds:
  vre:
    auth:
      auth_url: $KS_URL
      username: admin
      password: $PW
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
    interface: public
EOF
  osenv >"$RUN/openrc"
}

keystone_catalog() {
  [[ -f $S/catalog.done ]] && return 0
  # type:service-name:service-user:url
  local eps="compute:nova:nova:http://$H:$P_NOVA/v2.1 placement:placement:placement:http://$H:$P_PLACEMENT"
  eps+=" image:glance:glance:http://$H:$P_GLANCE network:neutron:neutron:http://$H:$P_NEUTRON"
  if [[ $CINDER == 1 ]]; then eps+=" block-storage:cinderv3:cinder:http://$H:$P_CINDER/v3/%(project_id)s"; fi
  VRE_PW=$PW VRE_EPS=$eps run_logged bootstrap "$VENV/bin/python" - <<'EOF'
import os, openstack
pw = os.environ["VRE_PW"]
c = openstack.connect(auth_url=os.environ["OS_AUTH_URL"], username="admin", password=pw, project_name="admin",
                      user_domain_name="Default", project_domain_name="Default", region_name="RegionOne")
idn = c.identity
def role(n): return idn.find_role(n) or idn.create_role(name=n)
admin, service_role = role("admin"), role("service")
proj = idn.find_project("service", domain_id="default") or idn.create_project(name="service", domain_id="default")
for ep in os.environ["VRE_EPS"].split():
    typ, name, uname, url = ep.split(":", 3)
    user = idn.find_user(uname, domain_id="default") or idn.create_user(name=uname, password=pw, domain_id="default", default_project_id=proj.id)
    idn.update_user(user, password=pw)
    for r in (admin, service_role):
        idn.assign_project_role_to_user(proj, user, r)
    svc = next((s for s in idn.services() if s.type == typ), None) or idn.create_service(name=name, type=typ)
    have = {e.interface for e in idn.endpoints(service_id=svc.id)}
    for itf in ("public", "internal", "admin"):
        if itf not in have:
            idn.create_endpoint(service_id=svc.id, interface=itf, url=url, region_id="RegionOne")
print("catalog ok")
EOF
  touch "$S/catalog.done"
}

resources() {
  [[ -f $S/resources.done ]] && return 0
  dd if=/dev/zero of="$RUN/glance/tiny.raw" bs=1M count=1 status=none
  VRE_IMG=$RUN/glance/tiny.raw run_logged resources "$VENV/bin/python" - <<'EOF'
import os, time, openstack
c = openstack.connect(cloud="vre")
for name, ram, vcpus, disk in (("m1.tiny", 512, 1, 1), ("m1.small", 2048, 1, 20), ("m1.medium", 4096, 2, 40)):
    if not c.compute.find_flavor(name):
        c.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk, is_public=True)
if not c.image.find_image("cirros"):
    c.create_image("cirros", filename=os.environ["VRE_IMG"], disk_format="raw", container_format="bare",
                   visibility="public", wait=True)
n = c.network
pub = n.find_network("public") or n.create_network(name="public", is_router_external=True, is_shared=False,
        provider_network_type="flat", provider_physical_network="public")
if not n.find_subnet("public-subnet"):
    n.create_subnet(network_id=pub.id, name="public-subnet", ip_version=4, cidr="172.24.4.0/24",
                    gateway_ip="172.24.4.1", is_dhcp_enabled=False,
                    allocation_pools=[{"start": "172.24.4.10", "end": "172.24.4.250"}])
priv = n.find_network("private") or n.create_network(name="private")
psub = n.find_subnet("private-subnet") or n.create_subnet(network_id=priv.id, name="private-subnet",
        ip_version=4, cidr="10.0.0.0/24", gateway_ip="10.0.0.1", dns_nameservers=["8.8.8.8"])
r = n.find_router("router1")
if not r:
    r = n.create_router(name="router1", external_gateway_info={"network_id": pub.id})
    n.add_interface_to_router(r, subnet_id=psub.id)
proj = c.identity.find_project("admin", domain_id="default")
sg = next(iter(n.security_groups(name="default", project_id=proj.id)), None)
if sg:
    for proto, port in (("icmp", None), ("tcp", 22)):
        try:
            n.create_security_group_rule(security_group_id=sg.id, direction="ingress", ethertype="IPv4",
                                         protocol=proto, port_range_min=port, port_range_max=port,
                                         remote_ip_prefix="0.0.0.0/0")
        except openstack.exceptions.ConflictException:
            pass
print("resources ok")
EOF
  touch "$S/resources.done"
}

discover_hosts() {
  local N=("$VENV/bin/nova-manage" --config-file "$E/nova/nova.conf") end=$((SECONDS + 90))
  until "${N[@]}" cell_v2 list_hosts 2>/dev/null | grep -q " $COMPUTE_HOST "; do
    (( SECONDS < end )) || die "compute host $COMPUTE_HOST never registered; see $L/nova-compute.log"
    pid_alive nova-compute || { tail -20 "$L/nova-compute.log" >&2; die "nova-compute exited"; }
    "${N[@]}" cell_v2 discover_hosts >>"$L/nova-manage.log" 2>&1 || true
    sleep 2
  done
}

wait_compute_up() {  # nova-compute must have heartbeated since this start (old rows look "up" for 60s)
  local since; since=$(date -u +%Y-%m-%dT%H:%M:%S)
  local end=$((SECONDS + 90))
  until VRE_SINCE=$since "$VENV/bin/python" - >/dev/null 2>&1 <<'EOF'
import os, sys, openstack
c = openstack.connect(cloud="vre")
ok = [s for s in c.compute.services(binary="nova-compute")
      if s.state == "up" and s.status == "enabled" and (s.updated_at or "")[:19] >= os.environ["VRE_SINCE"]]
sys.exit(0 if ok else 1)
EOF
  do
    pid_alive nova-compute || { tail -20 "$L/nova-compute.log" >&2; die "nova-compute exited; see $L/nova-compute.log"; }
    (( SECONDS < end )) || die "nova-compute not up after 90s; see $L/nova-compute.log"
    sleep 2
  done
}

wait_cinder_pools() {  # the scheduler knows no backend until cinder-volume's first periodic stats report
  local end=$((SECONDS + 120))
  until "$VENV/bin/python" - >/dev/null 2>&1 <<'EOF'
import sys, openstack
c = openstack.connect(cloud="vre")
sys.exit(0 if list(c.block_storage.backend_pools()) else 1)
EOF
  do
    pid_alive cinder-volume || { tail -20 "$L/cinder-volume.log" >&2; die "cinder-volume exited"; }
    (( SECONDS < end )) || die "cinder scheduler has no backend pool after 120s; see $L/cinder-*.log"
    sleep 2
  done
}

# ================================================================ services
uwsgi_spawn() {  # name port module [ENV=VAL...]
  local name=$1 port=$2 module=$3; shift 3
  pid_alive "$name" && return 0
  need_port "$port" "$name"
  spawn "$name" env "$@" "$VENV/bin/uwsgi" --master --die-on-term --exit-on-reload \
    --http "$H:$port" --http-keepalive --http-chunked-input --http-timeout 300 \
    --virtualenv "$VENV" --module "$module" --processes "${UWSGI_PROCS:-2}" --enable-threads \
    --lazy-apps --buffer-size 65535 --thunder-lock --disable-logging --log-4xx --log-5xx \
    ${UWSGI_PYARGV:+--pyargv "$UWSGI_PYARGV"}
}

daemon_spawn() {  # name cmd...
  local name=$1; shift
  pid_alive "$name" && return 0
  spawn "$name" "$@"
}

SERVICES=(mariadb epmd rabbitmq keystone placement glance neutron nova-api nova-conductor nova-scheduler nova-compute
          cinder-api cinder-scheduler cinder-volume)

cmd_start() {
  [[ -x $VENV/bin/uwsgi && -f $VENV/.vre-installed ]] || die "venv $VENV missing; run: $0 install"
  local all=1 s
  for s in "${SERVICES[@]}"; do
    [[ $CINDER != 1 && $s == cinder-* ]] && continue
    pid_alive "$s" || all=0
  done
  if (( all )) && [[ -f $S/resources.done ]]; then write_clouds_yaml; echo "$RUN/clouds.yaml"; return 0; fi
  export OS_CLIENT_CONFIG_FILE=$RUN/clouds.yaml OS_AUTH_URL=$KS_URL
  write_configs
  write_clouds_yaml
  start_infra
  db_sync
  UWSGI_PROCS=2 uwsgi_spawn keystone "$P_KEYSTONE" keystone.wsgi.api:application \
    OS_KEYSTONE_CONFIG_FILES="$E/keystone/keystone.conf"
  wait_for keystone 60 curl -fsS --max-time 3 "$KS_URL"
  keystone_catalog
  UWSGI_PROCS=1 uwsgi_spawn placement "$P_PLACEMENT" placement.wsgi.api:application OS_PLACEMENT_CONFIG_DIR="$E/placement"
  UWSGI_PROCS=1 uwsgi_spawn glance "$P_GLANCE" glance.wsgi.api:application OS_GLANCE_CONFIG_DIR="$E/glance"
  UWSGI_PROCS=2 uwsgi_spawn neutron "$P_NEUTRON" neutron.wsgi.api:application \
    OS_NEUTRON_CONFIG_DIR="$E/neutron" OS_NEUTRON_CONFIG_FILES="neutron.conf;ml2_conf.ini"
  UWSGI_PROCS=2 uwsgi_spawn nova-api "$P_NOVA" nova.wsgi.osapi_compute:application \
    OS_NOVA_CONFIG_DIR="$E/nova" OS_NOVA_CONFIG_FILES="api-paste.ini;nova.conf;nova-api.conf"
  local NC=(--config-file "$E/nova/nova.conf")
  daemon_spawn nova-conductor "$VENV/bin/nova-conductor" "${NC[@]}" --log-file "$L/nova-conductor.log"
  daemon_spawn nova-scheduler "$VENV/bin/nova-scheduler" "${NC[@]}" --log-file "$L/nova-scheduler.log"
  wait_for placement 60 http_up "$P_PLACEMENT"
  daemon_spawn nova-compute "$VENV/bin/nova-compute" "${NC[@]}" --log-file "$L/nova-compute.log"
  if [[ $CINDER == 1 ]]; then
    UWSGI_PROCS=1 UWSGI_PYARGV="--config-file $E/cinder/cinder.conf" \
      uwsgi_spawn cinder-api "$P_CINDER" cinder.wsgi.api:application
    local CC=(--config-file "$E/cinder/cinder.conf")
    daemon_spawn cinder-scheduler "$VENV/bin/cinder-scheduler" "${CC[@]}" --log-file "$L/cinder-scheduler.log"
    daemon_spawn cinder-volume "$VENV/bin/cinder-volume" "${CC[@]}" --log-file "$L/cinder-volume.log"
  fi
  wait_for glance 60 http_up "$P_GLANCE"
  wait_for neutron 90 http_up "$P_NEUTRON"
  wait_for nova-api 90 http_up "$P_NOVA"
  if [[ $CINDER == 1 ]]; then wait_for cinder-api 90 http_up "$P_CINDER"; fi
  discover_hosts
  wait_compute_up
  if [[ $CINDER == 1 ]]; then wait_cinder_pools; fi
  resources
  echo "$RUN/clouds.yaml"
}

cmd_stop() {
  stop_many keystone placement glance neutron nova-api nova-conductor nova-scheduler nova-compute \
            cinder-api cinder-scheduler cinder-volume
  stop_many rabbitmq
  stop_many epmd mariadb
}

cmd_status() {
  local s rc=0
  for s in "${SERVICES[@]}"; do
    if pid_alive "$s"; then echo "$s running (pid $(cut -d' ' -f1 "$RUN/pids/$s.pid"))"
    elif [[ $CINDER != 1 && $s == cinder-* ]]; then :
    else echo "$s stopped"; rc=1; fi
  done
  return $rc
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  env) write_clouds_yaml; osenv ;;
  clean) cmd_stop; rm -rf "$RUN" ;;
  *) echo "usage: $0 install|start|stop|restart|status|env|clean" >&2; exit 2 ;;
esac
