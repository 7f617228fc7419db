#!/usr/bin/env bash
# Builds crates/quicwire-wasm into pkg/ (wasm-pack, --target web, release with wasm-opt).
#
# Where rustup has the wasm32 target (GitHub runners), it is used as is. On our machines
# rustup cannot add it, so the build uses Debian's rustc with std rebuilt from source
# (../shared/tools, see its README). This script provisions what is missing, idempotently:
# that toolchain (root, apt), wasm-bindgen-cli pinned to the Cargo.lock version, and
# wasm-pack; installs are reused when their version already matches.
set -euo pipefail
cd "$(dirname "$0")"
toolchain_env=""
build_std=()
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  tools=${QUICWIRE_WASM_TOOLS:-$(cd .. && pwd)/shared/tools}
  [[ -x $tools/wasm-toolchain.sh ]] || {
    echo "wasm-pack-build.sh: no wasm32 target (rustup target add wasm32-unknown-unknown) and no $tools/wasm-toolchain.sh (set QUICWIRE_WASM_TOOLS)"
    exit 1
  }
  "$tools/wasm-toolchain.sh" --check >/dev/null 2>&1 || "$tools/wasm-toolchain.sh"
  toolchain_env=$("$tools/wasm-toolchain.sh" --print-env)
  build_std=(-Zbuild-std=std,panic_abort)
fi

# Install a crate's binary unless that version is already on PATH. --locked first; some
# lockfiles pin versions the registry no longer serves, then an unlocked install.
install() { # crate version binary
  if "$3" --version 2>/dev/null | grep -q " $2\$"; then return; fi
  echo "wasm-pack-build.sh: cargo install $1 $2"
  cargo install --locked "$1" --version "$2" || cargo install --force "$1" --version "$2"
}
bindgen=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,""); print $3; exit}' Cargo.lock)
install wasm-bindgen-cli "$bindgen" wasm-bindgen
install wasm-pack 0.15.1 wasm-pack

(
  eval "$toolchain_env"
  # wasm-opt from npm's binaryen (pinned in package.json): Debian's wasm-opt 108 corrupts the
  # externref table that wasm-bindgen emits.
  export PATH="$PWD/node_modules/.bin:$PATH"
  # shellcheck disable=SC2086 # WASM_CARGO_ARGS is a list of arguments or empty
  wasm-pack build crates/quicwire-wasm --mode force --target web --release \
    --out-dir ../../pkg --out-name quicwire_wasm --no-pack \
    -- "${build_std[@]}" ${WASM_CARGO_ARGS:-}
)
raw=$(wc -c < pkg/quicwire_wasm_bg.wasm)
gz=$(gzip -9 -c pkg/quicwire_wasm_bg.wasm | wc -c)
echo "pkg/quicwire_wasm_bg.wasm: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzipped"
