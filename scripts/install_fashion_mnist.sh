#!/usr/bin/env bash
# Makes sure real Fashion-MNIST IDX files are at $1 (default /usr/share/datasets/fashion-mnist).
# They come from Debian's package dataset-fashion-mnist; without root or apt we say how to get them.
set -euo pipefail
dir="${1:-/usr/share/datasets/fashion-mnist}"
if [ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-labels-idx1-ubyte.gz" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian package dataset-fashion-mnist ..."
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  fi
fi
if [ ! -f "$dir/train-images-idx3-ubyte.gz" ]; then
  cat >&2 <<MSG
Fashion-MNIST was not found at $dir.
Install it with:   sudo apt-get install dataset-fashion-mnist
or download the four IDX .gz files (train/t10k images/labels) into a folder and pass
FASHION_MNIST_DIR=/that/folder to make (or --fashion_mnist_dir to the examples).
MSG
  exit 1
fi
