#!/usr/bin/env bash
# Fetches the TFLite C headers the delegate compiles against, from a registry artifact, and
# extracts only the headers into DEST/include. Nothing is copied into the repository.
#
# Artifact: the TFLite Android AAR org.tensorflow:tensorflow-lite:2.16.1 from Maven Central
# (fetched with plain `mvn`), pinned by SHA-256. Its headers/ folder holds
# tensorflow/lite/{c,core/c}/common.h, c_api_types.h and builtin_ops.h: exactly what a raw
# TfLiteDelegate needs. (The LiteRT AARs, com.google.ai.edge.litert:litert, are not served by
# Maven Central; tensorflow-lite 2.16.1 is the newest TFLite AAR there.)
#
# Usage: scripts/fetch_tflite_headers.sh DEST
#   TTQ_TFLITE_AAR=/path/to/tensorflow-lite-2.16.1.aar  use a local copy instead of mvn
#                                                        (still checksum-verified)
set -euo pipefail

GROUP=org.tensorflow
ARTIFACT=tensorflow-lite
VERSION=2.16.1
SHA256=34b065817e294e7dd3569504e8b9454938ceae453b6a459da54d5f6e45d3c94e

DEST=${1:?usage: fetch_tflite_headers.sh DEST}
STAMP="$DEST/.fetched-$ARTIFACT-$VERSION-$SHA256"
if [[ -f "$STAMP" && -f "$DEST/include/tensorflow/lite/c/common.h" ]]; then
  exit 0
fi

aar=${TTQ_TFLITE_AAR:-}
if [[ -z "$aar" ]]; then
  repo=${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}
  aar="$repo/${GROUP//.//}/$ARTIFACT/$VERSION/$ARTIFACT-$VERSION.aar"
  if [[ ! -f "$aar" ]]; then
    command -v mvn >/dev/null ||
      { echo "fetch_tflite_headers: mvn not found (run scripts/install_build_deps.sh)" >&2; exit 1; }
    echo "fetch_tflite_headers: mvn dependency:get $GROUP:$ARTIFACT:$VERSION:aar" >&2
    mvn -q -B -Dstyle.color=never dependency:get -Dmaven.repo.local="$repo" \
      -Dartifact="$GROUP:$ARTIFACT:$VERSION:aar" -Dtransitive=false >&2 ||
      { echo "fetch_tflite_headers: mvn could not fetch $GROUP:$ARTIFACT:$VERSION:aar" >&2; exit 1; }
  fi
fi
[[ -f "$aar" ]] || { echo "fetch_tflite_headers: $aar not found" >&2; exit 1; }

got=$(sha256sum "$aar" | cut -d' ' -f1)
if [[ "$got" != "$SHA256" ]]; then
  echo "fetch_tflite_headers: checksum mismatch for $aar" >&2
  echo "  expected $SHA256" >&2
  echo "  got      $got" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unzip -q "$aar" 'headers/*' -d "$tmp"
for h in tensorflow/lite/c/common.h tensorflow/lite/core/c/common.h \
         tensorflow/lite/core/c/c_api_types.h tensorflow/lite/builtin_ops.h; do
  [[ -f "$tmp/headers/$h" ]] || { echo "fetch_tflite_headers: $h missing from $aar" >&2; exit 1; }
done
rm -rf "$DEST/include"
mkdir -p "$DEST"
mv "$tmp/headers" "$DEST/include"
rm -f "$DEST"/.fetched-*
touch "$STAMP"
echo "fetch_tflite_headers: TFLite $VERSION headers in $DEST/include" >&2
