#!/usr/bin/env bash
# Fetches one pinned Maven Central artifact with plain `mvn dependency:get`, checks its SHA-256
# and extracts the one file the build needs into DEST. Nothing is copied into the repository.
#
# Usage: scripts/fetch_pinned_artifact.sh NAME DEST
#   NAME                       artifact (Maven coordinates)              -> file written to DEST
#   tflite-c-api-linux-arm64   org.bytedeco:tensorflow-lite:2.18.0-1.5.11:jar:linux-arm64
#                                                                        -> libjnitensorflowlite.so
#     TFLite 2.18.0 built for aarch64 Linux by the JavaCPP presets; the library exports TFLite's
#     whole C API (TfLiteModelCreateFromFile, TfLiteInterpreterOptionsAddDelegate, ...) and needs
#     only glibc and libstdc++. tools/tflite_runner.cc dlopens it under qemu-aarch64.
#   tflite-c-api-linux-x86_64  org.bytedeco:tensorflow-lite:2.18.0-1.5.11:jar:linux-x86_64
#                                                                        -> libjnitensorflowlite.so
#     The same runtime for x86-64 (the runner's host build).
#   javacpp, javacpp-linux-x86_64, tflite-bytedeco, tflite-bytedeco-linux-x86_64
#                              org.bytedeco:{javacpp:1.5.11,tensorflow-lite:2.18.0-1.5.11}[:linux-x86_64]
#                                                                        -> the jars themselves
#     TFLite 2.18's C API from Java (JavaCPP presets): the host-JVM end-to-end test.
#   tflite-java-api            org.tensorflow:tensorflow-lite-api:2.16.1:aar
#                                                                        -> tensorflow-lite-api.jar
#     classes.jar of the AAR: the interface org.tensorflow.lite.Delegate that TtqDelegate.java
#     implements (it is in tensorflow-lite-api, not in tensorflow-lite).
#
#   MAVEN_REPO_LOCAL=dir   Maven's local repository (default ~/.m2/repository)
set -euo pipefail

NAME=${1:?usage: fetch_pinned_artifact.sh NAME DEST}
DEST=${2:?usage: fetch_pinned_artifact.sh NAME DEST}

case "$NAME" in
  tflite-c-api-linux-arm64)
    COORD=org.bytedeco:tensorflow-lite:2.18.0-1.5.11:jar:linux-arm64
    SHA256=533321eda09e42358b35cbde77d768bf01ac6476a7c2f8bed34afb4968d2340b
    MEMBER=org/bytedeco/tensorflowlite/linux-arm64/libjnitensorflowlite.so
    OUT=libjnitensorflowlite.so ;;
  tflite-c-api-linux-x86_64)
    COORD=org.bytedeco:tensorflow-lite:2.18.0-1.5.11:jar:linux-x86_64
    SHA256=09e8a949a86745d372a5cc40b4937d9c113356bd92b5655e8a463682471b1354
    MEMBER=org/bytedeco/tensorflowlite/linux-x86_64/libjnitensorflowlite.so
    OUT=libjnitensorflowlite.so ;;
  tflite-java-api)
    COORD=org.tensorflow:tensorflow-lite-api:2.16.1:aar
    SHA256=885b95bc9e47a4aa5cf8e71523aed9b05e397cfef1ea09773f13fea8b649fcee
    MEMBER=classes.jar
    OUT=tensorflow-lite-api.jar ;;
  # Whole jars (MEMBER empty) for the host-JVM end-to-end test (tests/jni_test.py): TFLite 2.18's
  # C API called from Java through the JavaCPP presets, with TtqDelegate's native handle.
  javacpp)
    COORD=org.bytedeco:javacpp:1.5.11:jar
    SHA256=2e3cc3c5d75f06d63dfaea839c4f1abc973fb72d518186016571c7467cdf8434
    MEMBER=""
    OUT=javacpp.jar ;;
  javacpp-linux-x86_64)
    COORD=org.bytedeco:javacpp:1.5.11:jar:linux-x86_64
    SHA256=c0c12bc792a02034176122d822237cce8f36d55d1c6a402533464caa4180fcb2
    MEMBER=""
    OUT=javacpp-linux-x86_64.jar ;;
  tflite-bytedeco)
    COORD=org.bytedeco:tensorflow-lite:2.18.0-1.5.11:jar
    SHA256=a6e3651ab439b0ac48273160d896404e82fac8d41216fad5541c682a81df7ab5
    MEMBER=""
    OUT=tensorflow-lite-bytedeco.jar ;;
  tflite-bytedeco-linux-x86_64)
    COORD=org.bytedeco:tensorflow-lite:2.18.0-1.5.11:jar:linux-x86_64
    SHA256=09e8a949a86745d372a5cc40b4937d9c113356bd92b5655e8a463682471b1354
    MEMBER=""
    OUT=tensorflow-lite-bytedeco-linux-x86_64.jar ;;
  *)
    echo "fetch_pinned_artifact: unknown artifact '$NAME'" >&2
    echo "  known: tflite-c-api-linux-arm64 tflite-c-api-linux-x86_64 tflite-java-api javacpp" >&2
    echo "         javacpp-linux-x86_64 tflite-bytedeco tflite-bytedeco-linux-x86_64" >&2
    exit 2 ;;
esac
if [[ -z "$SHA256" ]]; then
  echo "fetch_pinned_artifact: $NAME has no pinned SHA-256" >&2
  exit 1
fi

STAMP="$DEST/.fetched-$NAME-$SHA256"
if [[ -f "$STAMP" && -f "$DEST/$OUT" ]]; then
  exit 0
fi

IFS=: read -r group artifact version type classifier <<<"$COORD"
repo=${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}
file="$repo/${group//.//}/$artifact/$version/$artifact-$version${classifier:+-$classifier}.$type"
if [[ ! -f "$file" ]]; then
  command -v mvn >/dev/null ||
    { echo "fetch_pinned_artifact: mvn not found (run scripts/install_build_deps.sh)" >&2; exit 1; }
  echo "fetch_pinned_artifact: mvn dependency:get $COORD" >&2
  mvn -q -B -Dstyle.color=never dependency:get -Dmaven.repo.local="$repo" \
    -Dartifact="$COORD" -Dtransitive=false >&2 ||
    { echo "fetch_pinned_artifact: mvn could not fetch $COORD" >&2; exit 1; }
fi
[[ -f "$file" ]] || { echo "fetch_pinned_artifact: $file not found after mvn" >&2; exit 1; }

got=$(sha256sum "$file" | cut -d' ' -f1)
if [[ "$got" != "$SHA256" ]]; then
  echo "fetch_pinned_artifact: checksum mismatch for $file ($COORD)" >&2
  echo "  expected $SHA256" >&2
  echo "  got      $got" >&2
  exit 1
fi

mkdir -p "$DEST"
if [[ -z "$MEMBER" ]]; then
  cp "$file" "$DEST/$OUT"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  unzip -q "$file" "$MEMBER" -d "$tmp" ||
    { echo "fetch_pinned_artifact: $MEMBER missing from $file" >&2; exit 1; }
  mv "$tmp/$MEMBER" "$DEST/$OUT"
fi
rm -f "$DEST"/.fetched-"$NAME"-*
touch "$STAMP"
echo "fetch_pinned_artifact: $COORD -> $DEST/$OUT" >&2
