#!/usr/bin/env bash
# Regenerates the committed provider schema (provider-schema/libvirt.json) from the real provider
# with `tofu providers schema -json`, then the TypeScript bindings in lib/generated/ from it, and
# the lean classes the library renders its own resources with (lib/generated-lean/).
# Needs scripts/toolchain.sh first. `--bindings-only` skips the schema step (no tofu needed).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LIBVIRT_CLUSTER_CACHE:-$HOME/.cache/cdktf-libvirt-cluster}
PROVIDER_VERSION=0.9.7

if [ "${1:-}" != "--bindings-only" ]; then
  export TF_CLI_CONFIG_FILE=$CACHE/tofurc PATH=$CACHE/bin:$PATH
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cat > "$work/main.tf.json" <<JSON
{"terraform":{"required_providers":{"libvirt":{"source":"dmacvicar/libvirt","version":"$PROVIDER_VERSION"}}}}
JSON
  (cd "$work" && tofu init -input=false -no-color >/dev/null && tofu providers schema -json) > "$work/raw.json"
  # OpenTofu keys the schema under registry.opentofu.org/..., the cdktf generator looks for
  # registry.terraform.io/... (open-constructs/cdk-terrain#216): normalise the key, and record the
  # version the way `cdktf get` does, so the bindings carry it.
  node -e '
    const fs = require("fs");
    const [raw, out, version] = process.argv.slice(1);
    const s = JSON.parse(fs.readFileSync(raw, "utf8"));
    const key = "registry.terraform.io/dmacvicar/libvirt";
    const entries = Object.entries(s.provider_schemas);
    if (entries.length !== 1) throw new Error("expected one provider, got " + entries.map(e => e[0]));
    const norm = { format_version: s.format_version, provider_schemas: { [key]: entries[0][1] }, provider_versions: { [key]: version } };
    fs.writeFileSync(out, JSON.stringify(norm, null, 2) + "\n");
  ' "$work/raw.json" provider-schema/libvirt.json "$PROVIDER_VERSION"
  echo "wrote provider-schema/libvirt.json"
fi
npx ts-node --transpile-only scripts/generate-bindings.ts
echo "wrote lib/generated/"
npx ts-node --transpile-only scripts/generate-lean.ts
echo "wrote lib/generated-lean/"
