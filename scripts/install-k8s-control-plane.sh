#!/usr/bin/env bash
# A real Kubernetes control plane for the scheduler-hook integration tests: kube-apiserver and
# kube-scheduler v1.20.2 built from Debian bookworm's `kubernetes` source package (it carries the
# upstream vendor/ tree, so no Go module proxy is needed) with Debian's Go 1.19, and etcd 3.4 from
# Debian. Follows ../shared/KUBERNETES.md §3. Idempotent: returns at once when the binaries exist.
#   K8S_PREFIX  where bin/ goes (default $HOME/.cache/k8s-control-plane/v1.20.2; tests read K8S_BIN
#               or this default)
#   K8S_JOBS    go build -p and GOMAXPROCS (default: the number of cores)
# Costs on a fresh machine: ~35 s of apt, a 34 MB source download, 3.5-8 min of build, ~2 GB of
# scratch disk (removed afterwards; 150 MB of binaries stay).
set -euo pipefail
PREFIX=${K8S_PREFIX:-$HOME/.cache/k8s-control-plane/v1.20.2}
JOBS=${K8S_JOBS:-$(nproc)}
DEBVER=1.20.5+really1.20.2-1.1+deb12u1
V=v1.20.2
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
APT="$SUDO apt-get -o DPkg::Lock::Timeout=600"

have_bins() { [ -x "$PREFIX/bin/kube-apiserver" ] && [ -x "$PREFIX/bin/kube-scheduler" ] && command -v etcd >/dev/null; }
if have_bins; then echo "k8s control plane: cached in $PREFIX/bin"; exit 0; fi
echo "k8s control plane: building kube-apiserver and kube-scheduler $V into $PREFIX/bin (3.5-8 min)" >&2

# 1. packages: Go 1.19, etcd 3.4, dpkg-dev (for apt-get source), openssl (test certificates)
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  $SUDO tee /etc/apt/sources.list.d/ctwin-bookworm-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  $APT update -qq
fi
DEBIAN_FRONTEND=noninteractive $APT install -y -qq --no-install-recommends golang-go etcd-server dpkg-dev openssl >/dev/null

# 2. the source (vendor/ included)
WORK=${K8S_WORK:-$(mktemp -d /var/tmp/ctwin-k8s-build.XXXXXX)}
trap '[ -z "${K8S_WORK:-}" ] && rm -rf "$WORK"' EXIT
cd "$WORK"
SRCDIR=$WORK/kubernetes-1.20.5+really1.20.2
[ -d "$SRCDIR" ] || apt-get source -qq "kubernetes=$DEBVER" 2>&1 | grep -v -e unsandboxed -e '^dpkg-source' || true
[ -d "$SRCDIR" ] || { echo "install-k8s-control-plane: apt-get source kubernetes=$DEBVER failed" >&2; exit 1; }

# 3. k8s 1.20 builds in GOPATH mode (its hack/lib/init.sh sets GO111MODULE=off)
export GOPATH=$WORK/gopath
mkdir -p "$GOPATH/src/k8s.io"
[ -L "$GOPATH/src/k8s.io/kubernetes" ] || ln -s "$SRCDIR" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
export PATH=/usr/lib/go/bin:$PATH GO111MODULE=off GOFLAGS= GOMAXPROCS=$JOBS CGO_ENABLED=0 GOPROXY=off
export GOCACHE=$WORK/gocache
LDF="-s -w"
for p in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  LDF="$LDF -X $p.gitVersion=$V -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
done

# 4. pkg/generated/openapi is generated at build time upstream (make gen_openapi): do its part
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  go build -p "$JOBS" -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  DIRS=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
    | xargs grep --color=never -l '^// *+k8s:' | xargs grep --color=never -l '+k8s:openapi-gen=' \
    | sed 's|^\./staging/src|vendor|; s|^\./||' \
    | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
    | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd,)
  mkdir -p _output
  "$WORK/openapi-gen" -i "$DIRS" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r _output/KUBE_violations.report
fi

# 5. the two binaries, installed only when both built
mkdir -p "$PREFIX/bin.new"
for c in kube-scheduler kube-apiserver; do
  echo "k8s control plane: go build $c" >&2
  go build -p "$JOBS" -trimpath -ldflags "$LDF" -o "$PREFIX/bin.new/$c" ./cmd/$c
done
rm -rf "$PREFIX/bin"; mv "$PREFIX/bin.new" "$PREFIX/bin"
"$PREFIX/bin/kube-apiserver" --version
