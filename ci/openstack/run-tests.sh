#!/usr/bin/env bash
# Installs and starts real OpenStack services on 127.0.0.1 (openstack-services.sh),
# runs vre-openstack's tests against them (the #[ignore]d ones included), and
# stops the services by PID, whatever the tests did. For .ci/run:
#
#   bash ci/openstack/run-tests.sh
#
# Measured on a 2-core CI machine: install ~6 min the first time (apt + pip), 0 s after;
# start 2.5-5 min from an empty run dir; the cloud-layer test ~4 min.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
svc="$here/openstack-services.sh"

t0=$SECONDS
bash "$svc" install
echo "openstack: install took $((SECONDS - t0)) s"
trap 'bash "$svc" stop' EXIT
t0=$SECONDS
bash "$svc" start >/dev/null
echo "openstack: start took $((SECONDS - t0)) s"
eval "$(bash "$svc" env)"
export OS_CLOUD=vre
cd "$root"
cargo test -p vre-openstack -- --include-ignored
