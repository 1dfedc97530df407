#!/usr/bin/env bash
# Installs Geysir on a Debian 12 machine (as root): the Debian packages it needs
# (deploy/packages.txt, only those missing), a Release build, the binaries under $PREFIX
# (default /usr/local), the unprivileged `geysir` user the gateway runs as, and the systemd
# unit (not enabled). Safe to run again: it upgrades the binaries in place.
#
#   ./deploy/install.sh                      # PREFIX=/usr/local
#   PREFIX=/opt/geysir ./deploy/install.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
BUILD="${GEYSIR_BUILD_DIR:-$ROOT/build/release}"
JOBS="${GEYSIR_JOBS:-$(nproc)}"

if [[ $(id -u) -ne 0 ]]; then
  echo "error: run as root (it installs packages, creates the geysir user and writes $PREFIX)" >&2
  exit 1
fi

# 1. Packages: install only what is missing, from the one list CI uses too.
mapfile -t wanted < <(grep -v '^\s*#' "$ROOT/deploy/packages.txt" | tr -s ' \t' '\n' | sed '/^$/d')
missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "==> installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
else
  echo "==> Debian packages: all present"
fi

# 2. Build (Release, no unit tests).
echo "==> building in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEYSIR_BUILD_TESTS=OFF >/dev/null
# Everything: cmake --install needs every target with an install() rule built.
ninja -C "$BUILD" -j"$JOBS"

# 3. Install: CMake's install() rules put the five binaries in bin/ and the runtime in
# share/geysir/runtime/ (the binaries find each other through /proc/self/exe and the runtime at
# ../share). They go to a staging prefix beside $PREFIX first and are then renamed into place
# one by one: a running daemon keeps its old file, where writing into it would be refused
# (ETXTBSY) or change the code under it.
echo "==> installing into $PREFIX"
install -d -m 0755 "$PREFIX"
STAGE="$(mktemp -d "$PREFIX/.geysir-install.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
cmake --install "$BUILD" --prefix "$STAGE" >/dev/null
chmod -R a+rX,go-w "$STAGE/share/geysir/runtime"
(cd "$STAGE" && find . -type f -printf '%P\n') | while IFS= read -r f; do
  install -d -m 0755 "$PREFIX/$(dirname "$f")"
  mv -f "$STAGE/$f" "$PREFIX/$f"
done

# 4. The unprivileged user the gateway drops to (the server falls back to nobody without it).
if ! getent passwd geysir >/dev/null; then
  echo "==> creating system user geysir"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin geysir
fi

# 5. systemd unit and its environment file (not enabled or started here).
install -d -m 0755 /etc/geysir
if [[ ! -f /etc/geysir/geysir.env ]]; then
  install -m 0644 "$ROOT/deploy/geysir.env" /etc/geysir/geysir.env
fi
if [[ -d /etc/systemd/system ]]; then
  sed "s#/usr/local/bin/geysir#$PREFIX/bin/geysir#" "$ROOT/deploy/geysir.service" > /etc/systemd/system/geysir.service
  command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null || true
fi
echo "==> installed: $PREFIX/bin/geysir ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
