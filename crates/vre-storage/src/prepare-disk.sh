# Runs on a storage node's host (through nsenter, under flock): formats the
# node's data volume once and mounts it at /var/lib/vre/storage.
# $1: this node's name; $2: "node=device" lines for the nodes whose device the
# cloud reported. Without a device, the one blank whole disk is used.
set -eu
node="$1"
devices="$2"
mnt=/var/lib/vre/storage
if mountpoint -q "$mnt"; then
  exit 0
fi
dev=$(printf '%s\n' "$devices" | awk -F= -v n="$node" '$1 == n { print $2 }')
if [ -z "$dev" ]; then
  for d in $(lsblk -dnpo NAME,TYPE | awk '$2 == "disk" { print $1 }'); do
    parts=$(lsblk -npo NAME "$d" | tail -n +2)
    if [ -z "$parts" ] && ! blkid -p "$d" >/dev/null 2>&1 && ! grep -q "^$d " /proc/mounts; then
      if [ -n "$dev" ]; then
        echo "vre-storage: several blank disks ($dev, $d) on $node; cannot tell which is the data volume" >&2
        exit 1
      fi
      dev="$d"
    fi
  done
fi
if [ -z "$dev" ]; then
  echo "vre-storage: no data volume found on $node (no device reported, no blank disk)" >&2
  exit 1
fi
if [ ! -b "$dev" ]; then
  echo "vre-storage: $dev is not a block device on $node" >&2
  exit 1
fi
# format only a device that carries no signature at all (never a used disk)
if ! blkid -p "$dev" >/dev/null 2>&1; then
  mkfs.ext4 -q -L vre-data "$dev"
fi
mkdir -p "$mnt"
mount "$dev" "$mnt"
touch "$mnt/.vre-data-disk"
