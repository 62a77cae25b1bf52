#!/usr/bin/env bash
# Builds the test guest: a tiny bootable Linux disk image (qcow2) that the e2e tests use as an
# ordinary base image (`Image.fromFile`), with a qcow2 overlay as virtio disk vda, SeaBIOS, boot
# from hd. Called by scripts/toolchain.sh; cached, and rebuilt when this script or a package changes.
#
# How the guest is built, from Debian packages only, with nothing installed on this machine and
# nothing mounted:
#   1. `apt-get download` Debian's kernel (the package linux-image-amd64 currently points to) and
#      busybox-static into a scratch folder; `dpkg-deb` unpacks them there.
#   2. An initramfs (cpio, gzip) holds busybox, the kernel modules the guest needs with their
#      dependencies (found with busybox depmod) and /init, the shell script below.
#   3. A FAT file system made in a plain file (mkfs.vfat, no partition table) gets the kernel, the
#      initramfs and syslinux.cfg through mtools' mcopy; `syslinux --install` (mtools-based) makes it
#      bootable; SeaBIOS boots its first sector. qemu-img converts it to qcow2.
#
# The guest never brings a network interface up, and writes no disk but the first sector of a
# second virtio disk (vdb, a data disk), once: at boot it reads that sector, and if it holds no
# mark yet writes `CDKTF-GUEST-DATA boot <boot_id> of <instance_id>` there (and flushes it). The mark
# it read or wrote is the report's "data": a guest that boots again on the same data disk (after a
# failover) reports the mark of its earlier boot, one on a new empty disk a mark of its own.
# Its /init (busybox sh, PID 1, root stays the initramfs) loads the virtio, SATA cdrom, ISO 9660,
# ACPI button and evdev modules, powers off on the ACPI power button (busybox acpid), brings
# hot-added CPUs online, mounts the NoCloud seed (a cdrom labelled cidata) read-only and writes a line
#   GUEST-REPORT {"seq":N,"boot_id":"…","uptime_s":N,"cpus_online":N,"mem_total_kib":N,
#                 "instance_id":"…","hostname":"…","macs":[…],"addresses":[…],"data":"…"}
# to /dev/ttyS0 at boot, whenever something but seq and uptime changes, and at least every 5 s.
# test/e2e/test-guest.ts reads those lines from a console log.
#
# Output: $CACHE/guest/guest.qcow2, and guest.key (the cache key, this script's sha256, the packages).
# Environment: LIBVIRT_CLUSTER_CACHE (default: ~/.cache/cdktf-libvirt-cluster)
set -euo pipefail

CACHE=${LIBVIRT_CLUSTER_CACHE:-$HOME/.cache/cdktf-libvirt-cluster}
OUT=$CACHE/guest
IMAGE=$OUT/guest.qcow2
KEY_FILE=$OUT/guest.key
# Kernel modules loaded at boot (their dependencies come along): virtio devices, the seed's SATA
# cdrom and its file system, and the ACPI power button as an input device.
MODULES=(virtio_pci virtio_blk virtio_net virtio_balloon ahci sr_mod isofs button evdev)
CMDLINE='console=ttyS0 quiet'
# Fixed timestamps (2000-01-01) for every file in the image, so that a rebuild gives the same files.
EPOCH=946684800

log() { printf '[test-guest] %s\n' "$*" >&2; }

# The candidate version of each package, on one line, in the order given.
candidates() { apt-cache policy "$@" | sed -n 's/^ *Candidate: //p' | paste -sd' '; }
installed() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo none; }

# The versioned kernel package (linux-image-6.1.0-N-amd64) the metapackage's candidate depends on.
KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
[ -n "$KERNEL_PKG" ] || { echo "test-guest: apt knows no linux-image-amd64 (run apt-get update)" >&2; exit 1; }
read -r KERNEL_VER BUSYBOX_VER < <(candidates "$KERNEL_PKG" busybox-static)
[ -n "$KERNEL_VER" ] && [ "$KERNEL_VER" != "(none)" ] && [ -n "$BUSYBOX_VER" ] && [ "$BUSYBOX_VER" != "(none)" ] \
  || { echo "test-guest: no candidate for $KERNEL_PKG or busybox-static (run apt-get update)" >&2; exit 1; }

KEY=$( {
  cat "$0"
  echo "$KERNEL_PKG=$KERNEL_VER busybox-static=$BUSYBOX_VER"
  for p in syslinux syslinux-common mtools dosfstools cpio qemu-utils; do echo "$p=$(installed "$p")"; done
} | sha256sum | cut -d' ' -f1)
if [ -f "$IMAGE" ] && [ "$(head -1 "$KEY_FILE" 2>/dev/null)" = "$KEY" ]; then
  log "cached: $IMAGE ($KERNEL_PKG $KERNEL_VER)"
  exit 0
fi

started=$(date +%s)
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "building $IMAGE from $KERNEL_PKG $KERNEL_VER and busybox-static $BUSYBOX_VER"

# --- 1. packages ---------------------------------------------------------------------------------
mkdir -p "$WORK/debs"
# As root, apt would hand the download to its _apt user, which cannot write here.
if ! (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User=root \
  "$KERNEL_PKG=$KERNEL_VER" "busybox-static=$BUSYBOX_VER" >/dev/null); then
  # The archive drops a kernel once a security update replaces it: stale package lists name it still.
  [ -z "${TEST_GUEST_LISTS_UPDATED:-}" ] || exit 1
  log "download failed: updating the package lists and starting over"
  rm -rf "$WORK"
  apt-get update -qq
  TEST_GUEST_LISTS_UPDATED=1 exec bash "$0"
fi
mkdir -p "$WORK/kernel" "$WORK/busybox"
# Only the kernel and the driver and file-system modules: the package also holds sound, GPU, ...
dpkg-deb --fsys-tarfile "$WORK"/debs/linux-image-*.deb | tar -x -C "$WORK/kernel" --wildcards \
  './boot/vmlinuz-*' './lib/modules/*/modules.*' './lib/modules/*/kernel/drivers/*' \
  './lib/modules/*/kernel/fs/*' './lib/modules/*/kernel/net/*' './lib/modules/*/kernel/lib/*'
dpkg-deb -x "$WORK"/debs/busybox-static_*.deb "$WORK/busybox"
BUSYBOX=$WORK/busybox/bin/busybox
KVER=$(basename "$WORK"/kernel/lib/modules/*)

# --- 2. initramfs --------------------------------------------------------------------------------
ROOT=$WORK/initramfs
mkdir -p "$ROOT"/{bin,dev,proc,sys,seed,tmp,etc/acpi/PWRF,lib/modules/"$KVER"}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do [ "$applet" = busybox ] || ln -s busybox "$ROOT/bin/$applet"; done

# The modules and everything they depend on: each module names its dependencies in its .modinfo
# section (`depends=a,b`), so no depmod over the whole tree is needed.
mods=$WORK/kernel/lib/modules/$KVER
declare -A module_file=() copied=()
while read -r ko; do name=${ko##*/}; name=${name%.ko}; module_file[${name//-/_}]=$ko; done < <(cd "$mods" && find kernel -name '*.ko')
queue=("${MODULES[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  m=${queue[0]//-/_}; queue=("${queue[@]:1}")
  [ -z "${copied[$m]:-}" ] || continue
  ko=${module_file[$m]:-}
  [ -n "$ko" ] || { echo "test-guest: $KERNEL_PKG has no module $m" >&2; exit 1; }
  mkdir -p "$ROOT/lib/modules/$KVER/$(dirname "$ko")"
  cp "$mods/$ko" "$ROOT/lib/modules/$KVER/$ko"
  copied[$m]=1
  IFS=, read -r -a deps < <(tr '\0' '\n' < "$mods/$ko" | sed -n 's/^depends=//p' | head -1) || true
  queue+=("${deps[@]}")
done
cp "$mods/modules.builtin" "$mods/modules.order" "$ROOT/lib/modules/$KVER/"
"$BUSYBOX" depmod -b "$ROOT" "$KVER"

# busybox acpid turns the power button's input event into "PWRF" and runs /etc/acpi/PWRF/00000080.
cat > "$ROOT/etc/acpi/PWRF/00000080" <<'SH'
#!/bin/sh
echo "test-guest: power button: powering off" > /dev/ttyS0
poweroff -f
SH
chmod 0755 "$ROOT/etc/acpi/PWRF/00000080"

cat > "$ROOT/init" <<'INIT'
#!/bin/sh
# PID 1 of the test guest. Never brings a network interface up; writes only a mark on vdb's first sector, once.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 3>/dev/ttyS0 </dev/null >&3 2>&3
modprobe -a MODULES_LIST
acpid -c /etc/acpi -l /dev/null
read -r boot_id < /proc/sys/kernel/random/boot_id

# Strips a YAML scalar's quotes and a trailing CR.
unquote() {
  v=${1%$(printf '\r')}
  case $v in \"*\") v=${v#\"}; v=${v%\"} ;; \'*\') v=${v#\'}; v=${v%\'} ;; esac
  printf '%s' "$v"
}
# JSON string body: backslashes and double quotes escaped.
json() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }

seed=''
instance_id=''
hostname=''
addresses=''
# The seed's part of every report, made once: a command substitution forks, which costs a guest
# in software emulation far more than the rest of a report.
ident='"instance_id":"","hostname":""'
mount_seed() {
  for dev in /dev/sr*; do
    [ -b "$dev" ] || continue
    mount -t iso9660 -o ro "$dev" /seed 2>/dev/null || continue
    if [ -f /seed/meta-data ]; then seed=$dev; break; fi
    umount /seed
  done
  [ -n "$seed" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      instance-id:*) instance_id=$(unquote "$(echo "${line#instance-id:}" | sed 's/^[[:space:]]*//;s/[[:space:]]*$//')") ;;
      local-hostname:*) hostname=$(unquote "$(echo "${line#local-hostname:}" | sed 's/^[[:space:]]*//;s/[[:space:]]*$//')") ;;
    esac
  done < /seed/meta-data
  [ -n "$hostname" ] && busybox hostname "$hostname"
  ident="\"instance_id\":\"$(json "$instance_id")\",\"hostname\":\"$(json "$hostname")\""
  # Every interface address of network-config (version 2), in file order: block or flow
  # sequences under an `addresses` key, except those of `nameservers`.
  [ -f /seed/network-config ] && addresses=$(awk '
    function emit(list,   n, i, a, x) {
      n = split(list, a, ",")
      for (i = 1; i <= n; i++) {
        x = a[i]; gsub(/^[ \t]+|[ \t\r]+$/, "", x); gsub(/^["\047]|["\047]$/, "", x)
        if (x != "") printf "%s\"%s\"", (count++ ? "," : ""), x
      }
    }
    { sub(/\r$/, "") }
    /^[ \t]*#/ || /^[ \t]*$/ { next }
    flow != "" { flow = flow $0; if (flow ~ /\]/) { sub(/\].*/, "", flow); emit(flow); flow = "" }; next }
    {
      match($0, /^[ \t-]*/); indent = RLENGTH
      if (block && indent > block_indent && $0 ~ /^[ \t]*- /) { item = $0; sub(/^[ \t]*- /, "", item); emit(item); next }
      block = 0
      while (depth > 0 && ind[depth] >= indent) depth--
      line = $0
      while (match(line, /addresses["\047]?[ \t]*:[ \t]*/)) {
        before = substr(line, 1, RSTART - 1); rest = substr(line, RSTART + RLENGTH); line = rest
        inner = (before ~ /nameservers/) || (depth > 0 && key[depth] == "nameservers")
        if (rest ~ /^\[/) {
          rest = substr(rest, 2)
          if (rest ~ /\]/) { sub(/\].*/, "", rest); if (!inner) emit(rest) }
          else if (!inner) flow = rest
        } else if (rest ~ /^[ \t]*$/ && !inner) { block = 1; block_indent = indent }
      }
      if (match($0, /^[ \t-]*[A-Za-z0-9_-]+[ \t]*:/)) { k = substr($0, indent + 1); sub(/[ \t]*:.*/, "", k); depth++; ind[depth] = indent; key[depth] = k }
    }' /seed/network-config)
  return 0
}

# The data disk's mark: read it, or write it once (after the seed, which names the instance).
data=''
data_done=''
data_mark() {
  # The disk's node may come a moment after its driver: looked for during the first 10 s.
  [ -b /dev/vdb ] || { [ "${up:-0}" -lt 10 ] || data_done=1; return 0; }
  [ -n "$seed" ] || [ "${up:-0}" -ge 30 ] || return 0
  mark=$(dd if=/dev/vdb bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1)
  case $mark in
    CDKTF-GUEST-DATA\ *) ;;
    *)
      mark="CDKTF-GUEST-DATA boot $boot_id of $instance_id"
      # conv=fsync: a flush the disk must honour (sync alone sends none for a raw device, and
      # QEMU may then still hold the new cluster's qcow2 mapping when its host dies).
      printf '%s\n' "$mark" | dd of=/dev/vdb bs=512 count=1 conv=sync,notrunc,fsync 2>/dev/null
      ;;
  esac
  data=$(json "$mark")
  data_done=1
}

seq=0
last_state=''
last_time=-5
while :; do
  # Hot-added CPUs arrive offline.
  for f in /sys/devices/system/cpu/cpu[0-9]*/online; do
    [ -f "$f" ] && read -r on < "$f" && [ "$on" = 0 ] && echo 1 > "$f"
  done
  [ -n "$seed" ] || mount_seed
  [ -n "$data_done" ] || data_mark
  cpus=0
  read -r ranges < /sys/devices/system/cpu/online
  IFS=,; for r in $ranges; do case $r in *-*) cpus=$((cpus + ${r#*-} - ${r%-*} + 1)) ;; *) cpus=$((cpus + 1)) ;; esac; done; unset IFS
  mem=0
  while read -r k v _; do [ "$k" = MemTotal: ] && mem=$v && break; done < /proc/meminfo
  macs=''
  for d in /sys/class/net/*; do
    [ "${d##*/}" = lo ] && continue
    [ -f "$d/address" ] && read -r mac < "$d/address" && macs="$macs${macs:+,}\"$mac\""
  done
  read -r up _ < /proc/uptime
  up=${up%.*}
  state="\"cpus_online\":$cpus,\"mem_total_kib\":$mem,$ident,\"macs\":[$macs],\"addresses\":[$addresses],\"data\":\"$data\""
  if [ "$state" != "$last_state" ] || [ $((up - last_time)) -ge 4 ]; then
    seq=$((seq + 1))
    printf 'GUEST-REPORT {"seq":%d,"boot_id":"%s","uptime_s":%d,%s}\n' "$seq" "$boot_id" "$up" "$state" >&3
    last_state=$state
    last_time=$up
  fi
  sleep 1
done
INIT
sed -i "s/MODULES_LIST/${MODULES[*]}/" "$ROOT/init"
chmod 0755 "$ROOT/init"

find "$ROOT" -exec touch -h -d "@$EPOCH" {} +
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9n > "$WORK/initrd.gz"

# --- 3. boot disk --------------------------------------------------------------------------------
BOOT=$WORK/boot
mkdir -p "$BOOT"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$BOOT/vmlinuz"
cp "$WORK/initrd.gz" "$BOOT/initrd.gz"
printf 'DEFAULT guest\nPROMPT 0\nTIMEOUT 0\nLABEL guest\n  LINUX /vmlinuz\n  INITRD /initrd.gz\n  APPEND %s\n' "$CMDLINE" > "$BOOT/syslinux.cfg"
touch -d "@$EPOCH" "$BOOT"/*
# Room for the files, syslinux and the FAT itself, in whole MiB.
size_mib=$(( ($(du -cb "$BOOT"/* | tail -1 | cut -f1) >> 20) + 2 ))
RAW=$WORK/disk.raw
truncate -s "${size_mib}M" "$RAW"
mkfs.vfat -n GUESTBOOT --invariant "$RAW" >/dev/null
# mtools stamps what it writes (syslinux's own files too) with SOURCE_DATE_EPOCH.
export SOURCE_DATE_EPOCH=$EPOCH TZ=UTC
mcopy -m -i "$RAW" "$BOOT/vmlinuz" "$BOOT/initrd.gz" "$BOOT/syslinux.cfg" ::/
syslinux --install "$RAW"
qemu-img convert -f raw -O qcow2 "$RAW" "$WORK/guest.qcow2"

mv "$WORK/guest.qcow2" "$IMAGE"
# The script's own hash lets test/e2e/test-guest.ts tell a stale image without asking apt.
printf '%s\nscript %s\n%s=%s busybox-static=%s\n' "$KEY" "$(sha256sum < "$0" | cut -d' ' -f1)" \
  "$KERNEL_PKG" "$KERNEL_VER" "$BUSYBOX_VER" > "$KEY_FILE"
log "built $IMAGE ($(du -h "$IMAGE" | cut -f1), kernel $KVER, initramfs $(du -h "$WORK/initrd.gz" | cut -f1)) in $(( $(date +%s) - started )) s"
