#!/usr/bin/env bash
# System packages: Python tooling, and the real servers the integration tests talk to.
# Usage: scripts/install-system-deps.sh [test|bench|run]   (needs root or sudo; Debian 12)
set -euo pipefail
what=${1:-test}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
base=(python3 python3-venv python3-dev gcc ca-certificates)
test_pkgs=(prometheus chromium chromium-driver prometheus-node-exporter slurmctld slurmd slurm-client munge slurmdbd mariadb-server slurmrestd slurm-wlm-jwt-plugin)
test_pkgs+=(iproute2)  # tests/netlab.py: ip netns, veth pairs, tc tbf
test_pkgs+=(victoria-metrics)  # tests/integration/test_influx_victoriametrics.py: the InfluxDB write endpoint
# hpcc group: bench/hpcc_runs.py (HPC Challenge over container configurations); the tests make one
# tiny real run of hpcc under Open MPI, bare and over a veth pair (tests/models/containers/test_hpcc.py)
hpcc_pkgs=(hpcc openmpi-bin bubblewrap crun charliecloud-runtime)
test_pkgs+=(hpcc openmpi-bin bubblewrap)
test_pkgs+=(docker-compose systemd)  # tests/deploy: `docker-compose config` (compose-spec schema, offline), `systemd-analyze verify`
bench_pkgs=(prometheus-node-exporter victoria-metrics influxdb wrk "${hpcc_pkgs[@]}" iproute2)
case "$what" in
  run) pkgs=("${base[@]}") ;;
  test) pkgs=("${base[@]}" "${test_pkgs[@]}") ;;
  bench) pkgs=("${base[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [test|bench|run]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$what" = test ]; then
  # the scheduler-hook tests run a real kube-apiserver + kube-scheduler: built once, then cached
  "$(dirname "$0")/install-k8s-control-plane.sh"
fi
