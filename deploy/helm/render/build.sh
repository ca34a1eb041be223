#!/bin/sh
# Builds the chart renderer (this directory) into OUT, offline, from Debian's
# packaged Go sources: Go 1.19 in GOPATH mode, sprig, semver and yaml.v2 from
# /usr/share/gocode. No module proxy is needed.
#
#   deploy/helm/render/build.sh [--install] OUT
#
# --install: apt-get install the packages first when they are missing (as
# root; `make helm-check` does). Without it, a missing package exits 3 with
# the command that installs it (the chart's test skips on that).
set -eu
PACKAGES="golang-go golang-github-masterminds-sprig-dev golang-github-masterminds-semver-dev golang-gopkg-yaml.v2-dev"
install=no
if [ "${1:-}" = "--install" ]; then install=yes; shift; fi
out=${1:?usage: build.sh [--install] OUT}
here=$(cd "$(dirname "$0")" && pwd)
case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$install" = no ]; then
    echo "the chart renderer needs:$missing (apt-get install$missing, or make helm-check)" >&2
    exit 3
  fi
  echo "helm-check: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

mkdir -p "$(dirname "$out")"
cd "$here"
# GOPATH mode: Debian installs the sources as a GOPATH tree, without the
# module cache a module build would fetch into.
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
  GOCACHE="${GOCACHE:-$here/../../../.cache/go-build}" \
  go build -o "$out" .
