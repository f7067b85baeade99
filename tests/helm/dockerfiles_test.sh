#!/usr/bin/env bash
# The images' Dockerfiles (helm/images/*/Dockerfile) build the same CMake targets the tests use:
# every `ninja -C build <targets>` names a target of this build, every binary they COPY out of
# /src/build is one this build produced, and every repository file they COPY exists.
set -euo pipefail
root=$1 build=$2
fail() { echo "FAIL: $*"; exit 1; }
n=0
for dockerfile in "$root"/helm/images/*/Dockerfile; do
  image=$(basename "$(dirname "$dockerfile")")
  targets=$(sed -n 's/.*ninja -C build \(.*\)$/\1/p' "$dockerfile")
  [[ -n $targets ]] || fail "$image: no ninja build line"
  for t in $targets; do
    ninja -C "$build" -t query "$t" >/dev/null 2>&1 || fail "$image: '$t' is not a CMake target"
  done
  for path in $(grep -o '/src/build/[^ ]*' "$dockerfile"); do
    [[ -x $build/${path#/src/build/} ]] || fail "$image: $path is not a binary this build makes"
  done
  while read -r src; do
    [[ -e $root/$src ]] || fail "$image: COPY $src: no such file"
  done < <(sed -n 's/^COPY \([^-][^ ]*\) .*/\1/p' "$dockerfile" | grep -v '^\.$' || true)
  grep -q "ENTRYPOINT \[\"/usr/local/bin/$image\"\]" "$dockerfile" || fail "$image: entrypoint"
  n=$((n + 1))
done
((n == 3)) || fail "expected 3 Dockerfiles, found $n"
echo "dockerfiles: $n checked"
