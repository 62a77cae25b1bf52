#!/usr/bin/env bash
# Installs everything the real-libvirt path needs: libvirt + QEMU (and PostgreSQL, for the
# remote-state tests) from Debian, OpenTofu built from its Go module, and
# terraform-provider-libvirt 0.9.7 built from the vendored source archive in
# ../shared/vendor/ (the Go module proxy refuses its module path; its dependencies resolve from the
# proxy). Idempotent: what is already built is kept in the cache folder and reused. Prints the
# versions it ends with.
#
# Environment:
#   LIBVIRT_CLUSTER_CACHE     where builds are cached (default: ~/.cache/cdktf-libvirt-cluster)
#   LIBVIRT_PROVIDER_ARCHIVE  the provider's source archive
#                             (default: ../shared/vendor/terraform-provider-libvirt-0.9.7.tar.gz)
set -euo pipefail

TOFU_VERSION=1.12.6
PROVIDER_VERSION=0.9.7
PROVIDER_SHA256=5428fd3fe81faa26501ddc0f434f469343059609d5b36e92f605609a43e965c0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROVIDER_ARCHIVE=${LIBVIRT_PROVIDER_ARCHIVE:-$ROOT/../shared/vendor/terraform-provider-libvirt-$PROVIDER_VERSION.tar.gz}

CACHE=${LIBVIRT_CLUSTER_CACHE:-$HOME/.cache/cdktf-libvirt-cluster}
BIN=$CACHE/bin
MIRROR=$CACHE/providers
mkdir -p "$BIN" "$MIRROR" "$CACHE/src"

log() { printf '[toolchain] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# genisoimage only for its isoinfo, with which the tests read the seed disks the library writes;
# postgresql for the remote-state tests and openssh-server for the SSH tests, which start their own
# servers (on a machine run by systemd, installing these packages also starts the system's own);
# netcat-openbsd for virsh over ssh to a host's socket (proxy=netcat); syslinux, syslinux-common,
# mtools, dosfstools and cpio to build the test guest's boot disk (scripts/test-guest.sh); bindfs for
# the live-migration drills' shared storage (a FUSE mount libvirt recognises as a shared file system);
# corosync for the controller's membership and quorum (the quorum drills start one corosync per lab
# host and one for the controller, each in a network namespace of the test's own).
PKGS=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils genisoimage postgresql
  openssh-server openssh-client netcat-openbsd syslinux syslinux-common mtools dosfstools cpio bindfs
  corosync)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Without udev, /dev/kvm (where present) stays root-only; libvirt then finds KVM unusable by its
# QEMU user, treats its QEMU capability cache as stale and re-probes QEMU on every domain define
# (about 80 s each here). Give it Debian's usual ownership.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# --- Go modules ----------------------------------------------------------------------------------
command -v go >/dev/null || { echo "go is required to build OpenTofu and the provider" >&2; exit 1; }

# Copies a module's source from the Go module cache into a writable folder, printing the folder.
module_src() {
  local mod=$1 ver=$2 dest=$3 dir
  if [ ! -f "$dest/go.mod" ]; then
    dir=$(cd "$CACHE" && go mod download -json "$mod@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [ -n "$dir" ] || { echo "go mod download $mod@$ver failed" >&2; exit 1; }
    rm -rf "$dest.tmp" && cp -r "$dir" "$dest.tmp" && chmod -R u+w "$dest.tmp" && mv "$dest.tmp" "$dest"
  fi
  printf '%s\n' "$dest"
}

cat > "$CACHE/tofurc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.opentofu.org/dmacvicar/libvirt", "registry.terraform.io/dmacvicar/libvirt"]
  }
  direct {
    exclude = ["registry.opentofu.org/dmacvicar/libvirt", "registry.terraform.io/dmacvicar/libvirt"]
  }
}
RC
export TF_CLI_CONFIG_FILE=$CACHE/tofurc
# `. $CACHE/env` sets up a shell for `cdktf deploy` with either engine. cdktf runs `<engine>
# providers lock` whenever the stack folder's lock file has no registry.terraform.io entry for a
# provider: on a first deploy, and on every command with OpenTofu, whose lock file names
# registry.opentofu.org. That command ignores the CLI configuration's mirrors and asks the registry
# unless given -fs-mirror, which TF_CLI_ARGS_providers_lock adds to it (and to nothing else).
cat > "$CACHE/env" <<ENV
export TF_CLI_CONFIG_FILE=$CACHE/tofurc
export TF_CLI_ARGS_providers_lock=-fs-mirror=$MIRROR
export PATH=$BIN:\$PATH
ENV
if ! "$BIN/tofu" version 2>/dev/null | grep -qx "OpenTofu v$TOFU_VERSION"; then
  src=$(module_src github.com/opentofu/opentofu "v$TOFU_VERSION" "$CACHE/src/opentofu-$TOFU_VERSION")
  log "building OpenTofu $TOFU_VERSION (several minutes on 2 cores)"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o "$BIN/tofu.tmp" ./cmd/tofu) && mv "$BIN/tofu.tmp" "$BIN/tofu"
fi

PLUGIN_NAME=terraform-provider-libvirt_v$PROVIDER_VERSION
# The same binary under both registry host names, so that `dmacvicar/libvirt` resolves offline
# for OpenTofu (registry.opentofu.org) and Terraform (registry.terraform.io) alike.
PLUGIN_DIRS=()
for host in registry.opentofu.org registry.terraform.io; do
  PLUGIN_DIRS+=("$MIRROR/$host/dmacvicar/libvirt/$PROVIDER_VERSION/linux_amd64")
done
if [ ! -x "${PLUGIN_DIRS[0]}/$PLUGIN_NAME" ]; then
  [ -f "$PROVIDER_ARCHIVE" ] || { echo "provider source archive not found: $PROVIDER_ARCHIVE (set LIBVIRT_PROVIDER_ARCHIVE)" >&2; exit 1; }
  echo "$PROVIDER_SHA256  $PROVIDER_ARCHIVE" | sha256sum -c --quiet - \
    || { echo "sha256 mismatch for $PROVIDER_ARCHIVE (expected $PROVIDER_SHA256)" >&2; exit 1; }
  src=$CACHE/src/terraform-provider-libvirt-$PROVIDER_VERSION
  rm -rf "$src" && tar -xzf "$PROVIDER_ARCHIVE" -C "$CACHE/src"
  log "building terraform-provider-libvirt $PROVIDER_VERSION from $(basename "$PROVIDER_ARCHIVE")"
  # Part of the provider is generated from libvirt's schemas and not in the archive.
  (cd "$src" && go run ./internal/codegen >/dev/null \
    && CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$PROVIDER_VERSION" -o "$CACHE/$PLUGIN_NAME.tmp" .)
  for d in "${PLUGIN_DIRS[@]}"; do mkdir -p "$d" && cp "$CACHE/$PLUGIN_NAME.tmp" "$d/$PLUGIN_NAME"; done
  rm -f "$CACHE/$PLUGIN_NAME.tmp"
fi

bash "$ROOT/scripts/test-guest.sh"

log "tofu:     $("$BIN/tofu" version | head -1)"
log "provider: dmacvicar/libvirt $PROVIDER_VERSION ($MIRROR)"
log "libvirt:  $(virsh --version) / $(qemu-system-x86_64 --version | head -1)"
log "env:      . $CACHE/env   (TF_CLI_CONFIG_FILE, TF_CLI_ARGS_providers_lock, PATH)"
