#!/usr/bin/env bash
# Checks the user data vre-kubernetes generates: every file must pass
# `cloud-init schema`, and every shell script it carries (write_files
# entries starting with #!, and string runcmd entries) must pass shellcheck.
#
#   ci/k8s/check-user-data.sh            # dumps the user data of a sample cluster, then checks it
#   ci/k8s/check-user-data.sh DIR        # checks the *.yaml files already in DIR
#
# Needs: cloud-init and shellcheck (Debian: apt-get install cloud-init shellcheck), python3 with PyYAML
# (a dependency of cloud-init), and cargo when no DIR is given.
set -euo pipefail

die() { echo "check-user-data.sh: $*" >&2; exit 1; }
for tool in cloud-init shellcheck python3; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install cloud-init shellcheck)"
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ $# -ge 1 ]]; then
  DIR=$1
else
  DIR=$WORK/user-data
  (cd "$ROOT" && cargo run -q -p vre-kubernetes --example dump_user_data -- "$DIR") >/dev/null
fi
shopt -s nullglob
files=("$DIR"/*.yaml)
(( ${#files[@]} > 0 )) || die "no *.yaml user data in $DIR"

failed=0
for f in "${files[@]}"; do
  name=$(basename "$f" .yaml)
  ok=1
  if ! out=$(cloud-init schema -c "$f" 2>&1); then
    echo "FAIL cloud-init schema $name:" >&2
    echo "$out" >&2
    ok=0
  fi
  # extract the shell fragments
  mkdir -p "$WORK/sh/$name"
  python3 - "$f" "$WORK/sh/$name" <<'PY' || { ok=0; failed=1; continue; }
import pathlib, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]).read())
out = pathlib.Path(sys.argv[2])
n = 0
for wf in doc.get("write_files") or []:
    content = wf.get("content") or ""
    if content.startswith("#!"):
        n += 1
        (out / f"file{n}.sh").write_text(content)
for cmd in doc.get("runcmd") or []:
    if isinstance(cmd, str):
        n += 1
        (out / f"runcmd{n}.sh").write_text("#!/bin/sh\n" + cmd + "\n")
if n == 0:
    sys.exit(f"{sys.argv[1]}: no shell script found")
PY
  for s in "$WORK/sh/$name"/*.sh; do
    if ! shellcheck -x "$s"; then
      echo "FAIL shellcheck $name ($(basename "$s"))" >&2
      ok=0
    fi
  done
  if ((ok)); then echo "ok   $name"; else failed=1; fi
done
exit "$failed"
