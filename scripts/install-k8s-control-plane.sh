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

# PATCHES names the source fixes below; binaries built without them are rebuilt (the marker file).
PATCHES="reflect2-go1.18-mapiterinit"
have_bins() { [ -x "$PREFIX/bin/kube-apiserver" ] && [ -x "$PREFIX/bin/kube-scheduler" ] && command -v etcd >/dev/null \
  && [ "$(cat "$PREFIX/bin/.patches" 2>/dev/null)" = "$PATCHES" ]; }
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

# 3b. vendored github.com/modern-go/reflect2 v1.0.1 declares reflect.mapiterinit with Go <= 1.17's
# signature (it returns the iterator); Go 1.18 changed it to fill one the caller passes. Built with
# Go 1.19 as is, kube-apiserver segfaults ("fatal error: fault" in mapiternext) when json-iterator
# sorts a map's keys, which it does for every custom resource's metadata. The same fix as
# reflect2 v1.0.2: pass a full-size hiter (Go 1.18-1.22 layout) allocated by the caller.
R2=vendor/github.com/modern-go/reflect2
if grep -q 'func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) \*hiter' $R2/unsafe_link.go; then
  python3 - "$R2" <<'PY'
import pathlib, sys
d = pathlib.Path(sys.argv[1])
link = d / "unsafe_link.go"
text = link.read_text()
text = text.replace("func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter",
                    "func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)")
old = text[text.index("type hiter struct {"):]
old = old[: old.index("}") + 1]
text = text.replace(old, """type hiter struct {
	key         unsafe.Pointer
	value       unsafe.Pointer
	t           unsafe.Pointer
	h           unsafe.Pointer
	buckets     unsafe.Pointer
	bptr        unsafe.Pointer
	overflow    *[]unsafe.Pointer
	oldoverflow *[]unsafe.Pointer
	startBucket uintptr
	offset      uint8
	wrapped     bool
	B           uint8
	i           uint8
	bucket      uintptr
	checkBucket uintptr
}""")
link.write_text(text)
m = d / "unsafe_map.go"
src = m.read_text()
call = "hiter:      mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj)),"
assert call in src, "reflect2 unsafe_map.go changed: update the patch"
src = src.replace(call, "hiter:      newHiter(type2.rtype, *(*unsafe.Pointer)(obj)),")
src += """
func newHiter(rtype unsafe.Pointer, m unsafe.Pointer) *hiter {
	it := new(hiter)
	mapiterinit(rtype, m, it)
	return it
}
"""
m.write_text(src)
PY
fi

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
echo "$PATCHES" > "$PREFIX/bin.new/.patches"
rm -rf "$PREFIX/bin"; mv "$PREFIX/bin.new" "$PREFIX/bin"
"$PREFIX/bin/kube-apiserver" --version
