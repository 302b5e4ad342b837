#!/usr/bin/env bash
# Fetches the headers of a header-only C++ library from a Debian package, pinned by version and
# SHA-256, and extracts only its include directory into DEST/include. Nothing is copied into
# the repository and nothing is installed on the system (the package is downloaded with
# `apt-get download` and unpacked with `dpkg-deb -x`, so no .so comes along).
#
#   flatbuffers   libflatbuffers-dev 2.0.8+dfsg1-2 (Debian bookworm): flatbuffers/flexbuffers.h
#                 with flexbuffers::VerifyBuffer, used header-only by the delegate's options
#                 parser (no libflatbuffers.so is linked).
#   nlohmann      nlohmann-json3-dev 3.11.2-2 (Debian bookworm): nlohmann/json.hpp, used by the
#                 gtests to read tests/data/format_v1.json.
#
# The .deb files are the amd64 builds; their headers are architecture independent, so the same
# headers serve the aarch64 cross build and the Android NDK build (tflite_delegate/README.md).
#
# Usage: scripts/fetch_deb_headers.sh DEST flatbuffers|nlohmann
#   TTQ_DEB_DIR=/path/with/the/.debs   use local copies instead of apt-get download
#                                       (still checksum-verified)
set -euo pipefail

DEST=${1:?usage: fetch_deb_headers.sh DEST flatbuffers|nlohmann}
LIBRARY=${2:?usage: fetch_deb_headers.sh DEST flatbuffers|nlohmann}

case "$LIBRARY" in
  flatbuffers)
    PACKAGE=libflatbuffers-dev
    VERSION=2.0.8+dfsg1-2
    DEB=libflatbuffers-dev_2.0.8+dfsg1-2_amd64.deb
    SHA256=3676a46547781991fa1b1ca9636e1b0c8704ec47828d680fc940851f3030c4ab
    INCLUDE_SUBDIR=flatbuffers
    CHECK_HEADER=flatbuffers/flexbuffers.h
    ;;
  nlohmann)
    PACKAGE=nlohmann-json3-dev
    VERSION=3.11.2-2
    DEB=nlohmann-json3-dev_3.11.2-2_all.deb
    SHA256=ec57940def6b6186c30be0e0ee81d1e58f86d11a54a145b28686a1e3e4aae801
    INCLUDE_SUBDIR=nlohmann
    CHECK_HEADER=nlohmann/json.hpp
    ;;
  *)
    echo "fetch_deb_headers: unknown library '$LIBRARY' (expected flatbuffers or nlohmann)" >&2
    exit 1
    ;;
esac

STAMP="$DEST/.fetched-$PACKAGE-$VERSION-$SHA256"
if [[ -f "$STAMP" && -f "$DEST/include/$CHECK_HEADER" ]]; then
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt-get download drops privileges to _apt, which must be able to write here

if [[ -n "${TTQ_DEB_DIR:-}" ]]; then
  deb="$TTQ_DEB_DIR/$DEB"
else
  command -v apt-get >/dev/null ||
    { echo "fetch_deb_headers: apt-get not found; set TTQ_DEB_DIR to a directory holding $DEB" >&2; exit 1; }
  # An arch-qualified name: the pinned .deb is the amd64 one on any host.
  arch=${DEB##*_}
  arch=${arch%.deb}
  spec="$PACKAGE:$arch=$VERSION"
  [[ "$arch" == all ]] && spec="$PACKAGE=$VERSION"
  echo "fetch_deb_headers: apt-get download $spec" >&2
  if ! (cd "$tmp" && apt-get download -q "$spec" >/dev/null 2>"$tmp/apt.err"); then
    # A fresh machine may not have the package lists yet.
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq >&2 || true
    (cd "$tmp" && apt-get download -q "$spec" >/dev/null 2>"$tmp/apt.err") ||
      { cat "$tmp/apt.err" >&2; echo "fetch_deb_headers: could not download $spec" >&2; exit 1; }
  fi
  deb="$tmp/$DEB"
fi
[[ -f "$deb" ]] || { echo "fetch_deb_headers: $deb not found" >&2; exit 1; }

got=$(sha256sum "$deb" | cut -d' ' -f1)
if [[ "$got" != "$SHA256" ]]; then
  echo "fetch_deb_headers: checksum mismatch for $deb" >&2
  echo "  expected $SHA256" >&2
  echo "  got      $got" >&2
  exit 1
fi

dpkg-deb -x "$deb" "$tmp/root"
[[ -f "$tmp/root/usr/include/$CHECK_HEADER" ]] ||
  { echo "fetch_deb_headers: $CHECK_HEADER missing from $deb" >&2; exit 1; }
rm -rf "$DEST/include"
mkdir -p "$DEST/include"
mv "$tmp/root/usr/include/$INCLUDE_SUBDIR" "$DEST/include/"
rm -f "$DEST"/.fetched-*
touch "$STAMP"
echo "fetch_deb_headers: $PACKAGE $VERSION headers in $DEST/include" >&2
