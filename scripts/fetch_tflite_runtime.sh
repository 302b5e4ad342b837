#!/usr/bin/env bash
# Fetches a TFLite 2.18 runtime with the C API for the raw-bytes fuzzer (tflite_delegate/fuzz/
# fuzz_tflite_file.cc): libjnitensorflowlite.so from the Maven artifact
# org.bytedeco:tensorflow-lite:2.18.0-1.5.11, classifier linux-x86_64, pinned by SHA-256. It
# exports TFLite's C API (TfLiteModelCreate, TfLiteInterpreterCreate, ...) and needs only libc,
# libm and libstdc++. Nothing is copied into the repository.
#
# Usage: scripts/fetch_tflite_runtime.sh DEST    prints DEST/libjnitensorflowlite.so
set -euo pipefail

GROUP=org.bytedeco
ARTIFACT=tensorflow-lite
VERSION=2.18.0-1.5.11
CLASSIFIER=linux-x86_64
SHA256=09e8a949a86745d372a5cc40b4937d9c113356bd92b5655e8a463682471b1354
LIB=org/bytedeco/tensorflowlite/linux-x86_64/libjnitensorflowlite.so

DEST=${1:?usage: fetch_tflite_runtime.sh DEST}
out="$DEST/libjnitensorflowlite.so"
stamp="$DEST/.fetched-$ARTIFACT-$VERSION-$CLASSIFIER-$SHA256"
if [[ -f "$stamp" && -f "$out" ]]; then
  echo "$out"
  exit 0
fi
repo=${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}
jar="$repo/${GROUP//.//}/$ARTIFACT/$VERSION/$ARTIFACT-$VERSION-$CLASSIFIER.jar"
if [[ ! -f "$jar" ]]; then
  command -v mvn >/dev/null ||
    { echo "fetch_tflite_runtime: mvn not found (run scripts/install_build_deps.sh)" >&2; exit 1; }
  echo "fetch_tflite_runtime: mvn dependency:get $GROUP:$ARTIFACT:$VERSION:jar:$CLASSIFIER" >&2
  mvn -q -B -Dstyle.color=never dependency:get -Dmaven.repo.local="$repo" \
    -Dartifact="$GROUP:$ARTIFACT:$VERSION:jar:$CLASSIFIER" -Dtransitive=false >&2 ||
    { echo "fetch_tflite_runtime: mvn could not fetch the artifact" >&2; exit 1; }
fi
got=$(sha256sum "$jar" | cut -d' ' -f1)
if [[ "$got" != "$SHA256" ]]; then
  echo "fetch_tflite_runtime: checksum mismatch for $jar (expected $SHA256, got $got)" >&2
  exit 1
fi
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$jar" "$LIB" -d "$tmp"
mv "$tmp/$LIB" "$out"
touch "$stamp"
echo "$out"
