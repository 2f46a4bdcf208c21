"""Shared helpers for the benchmarks: real servers on 127.0.0.1, CPU and memory accounting, the
node-exporter-shaped workload, and the result line every benchmark prints last.

Every server is started by the benchmark itself, on a free port, in a temporary directory, and
stopped in a `finally` block; nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "CLK_TCK",
    "NodeSeries",
    "Server",
    "cpu_seconds",
    "fmt_rate",
    "free_port",
    "machine_note",
    "node_series",
    "proc_cpu_seconds",
    "require_binary",
    "result_line",
    "rss_bytes",
    "server",
    "wait_http",
    "wait_idle",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")
INSTALL_HINT = "scripts/install-system-deps.sh bench"


# ------------------------------------------------------------------------------------------ servers
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str) -> str:
    """Absolute path of a server binary, or print how to install it and exit non-zero."""
    path = shutil.which(name)
    if path is None:
        print(f"{name} is not installed; install the benchmark servers with: {INSTALL_HINT}", file=sys.stderr)
        raise SystemExit(2)
    return path


def wait_http(url: str, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 2xx; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            r = httpx.get(url, timeout=2.0)
            if r.is_success:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s:g}s (last: {last})")


@dataclass
class Server:
    """A running server process, its port and its log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: only this process, by its pid."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def server(
    argv: Sequence[str], port: int, workdir: Path, ready_path: str, name: str, timeout_s: float = 30.0
) -> Iterator[Server]:
    """Start `argv` in `workdir` (its output to `workdir/<name>.log`), wait until
    http://127.0.0.1:<port><ready_path> answers, yield it, and always stop it."""
    log = workdir / f"{name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(list(argv), cwd=workdir, stdout=fh, stderr=subprocess.STDOUT)
    srv = Server(proc, port, log)
    try:
        try:
            wait_http(srv.url(ready_path), timeout_s, proc)
        except Exception:
            print(srv.log_tail(), file=sys.stderr)
            raise
        yield srv
    finally:
        stop_process(proc)


# ------------------------------------------------------------------------------------------ accounting
def proc_cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a whole process (all threads) from /proc/<pid>/stat;
    with `children`, plus the CPU of its reaped children (cutime + cstime)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLK_TCK


def cpu_seconds() -> float:
    """CPU seconds of this process so far (all threads, user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def machine_note() -> str:
    """Cores and load average: benchmarks on a shared machine should say how busy it was."""
    one, five, _ = os.getloadavg()
    return f"machine: {os.cpu_count()} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def wait_idle(pid: int, busy_below: float = 0.05, window_s: float = 1.0, timeout_s: float = 60.0) -> float:
    """Wait until process `pid` uses less than `busy_below` of one core over `window_s` (its
    background merges/compactions have settled); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = proc_cpu_seconds(pid)
        time.sleep(window_s)
        if proc_cpu_seconds(pid) - before < busy_below * window_s:
            break
    return time.monotonic() - started


def rss_bytes(pid: int | str = "self", key: str = "VmRSS") -> int:
    """A memory figure from /proc/<pid>/status (VmRSS, or VmHWM for the peak), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0) so a later read shows the peak from now on."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def fmt_rate(samples: float, seconds: float) -> str:
    return f"{samples / seconds:,.0f} samples/s" if seconds > 0 else "inf samples/s"


def write_report(path: Path, title: str, body: Sequence[str], last: str) -> None:
    """A benchmark's results page: title, body lines, then its result line, so a table in
    bench/results never travels without its verdict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([f"# {title}", "", *body, "", f"`{last}`", ""]))
    print(f"table written to {path}")


def result_line(name: str, ratio: float, target: float, *, lower_is_better: bool = False) -> str:
    """The last line of every benchmark: PASS when ratio >= target (or <= with lower_is_better)."""
    ok = ratio <= target if lower_is_better else ratio >= target
    shown = f"{target:.1f}" if round(target, 1) == target else f"{target:g}"  # 1.0, 0.8, but 1.15
    return f"{name}: ratio={ratio:.3f} target={shown} {'PASS' if ok else 'FAIL'}"


# ------------------------------------------------------------------------------------------ workload
@dataclass(frozen=True)
class NodeSeries:
    """One node_exporter-style series template: metric name, its own labels, counter or gauge."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    counter: bool


def _words(text: str) -> list[str]:
    return text.split()


_CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
_DISK_METRICS = (
    "node_disk_discard_time_seconds_total",
    "node_disk_discarded_sectors_total",
    "node_disk_discards_completed_total",
    "node_disk_discards_merged_total",
    "node_disk_flush_requests_time_seconds_total",
    "node_disk_flush_requests_total",
    "node_disk_io_now",
    "node_disk_io_time_seconds_total",
    "node_disk_io_time_weighted_seconds_total",
    "node_disk_read_bytes_total",
    "node_disk_read_time_seconds_total",
    "node_disk_reads_completed_total",
    "node_disk_reads_merged_total",
    "node_disk_write_time_seconds_total",
    "node_disk_writes_completed_total",
    "node_disk_writes_merged_total",
    "node_disk_written_bytes_total",
)
_FS_METRICS = (
    "node_filesystem_avail_bytes",
    "node_filesystem_device_error",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_filesystem_free_bytes",
    "node_filesystem_readonly",
    "node_filesystem_size_bytes",
)
_FILESYSTEMS = (
    ("/dev/nvme0n1p2", "ext4", "/"),
    ("/dev/nvme0n1p1", "vfat", "/boot/efi"),
    ("/dev/md0", "xfs", "/scratch"),
    ("tmpfs", "tmpfs", "/run"),
    ("tmpfs", "tmpfs", "/dev/shm"),
    ("beegfs_nodev", "beegfs", "/work"),
)
_NET_DIRECTIONAL = (
    "bytes",
    "compressed",
    "drop",
    "errs",
    "fifo",
    "packets",
)
_NET_EXTRA = _words("""node_network_receive_frame_total node_network_receive_multicast_total
    node_network_transmit_carrier_total node_network_transmit_colls_total""")
_NET_GAUGES = _words("""node_network_mtu_bytes node_network_speed_bytes node_network_up node_network_carrier
    node_network_transmit_queue_length""")
_MEMORY = _words("""Active Active_anon Active_file AnonHugePages AnonPages Bounce Buffers Cached CommitLimit
    Committed_AS DirectMap1G DirectMap2M DirectMap4k Dirty FileHugePages FilePmdMapped HardwareCorrupted
    HugePages_Free HugePages_Rsvd HugePages_Surp HugePages_Total Hugepagesize Hugetlb Inactive Inactive_anon
    Inactive_file KReclaimable KernelStack Mapped MemAvailable MemFree MemTotal Mlocked NFS_Unstable PageTables
    Percpu SReclaimable SUnreclaim SecPageTables ShmemHugePages ShmemPmdMapped Shmem Slab SwapCached SwapFree
    SwapTotal Unevictable VmallocChunk VmallocTotal VmallocUsed Writeback WritebackTmp Zswap Zswapped""")
_NETSTAT = _words("""Icmp6_InErrors Icmp6_InMsgs Icmp6_OutMsgs Icmp_InErrors Icmp_InMsgs Icmp_OutMsgs Ip6_InOctets
    Ip6_OutOctets IpExt_InOctets IpExt_OutOctets Ip_Forwarding TcpExt_ListenDrops TcpExt_ListenOverflows
    TcpExt_SyncookiesFailed TcpExt_SyncookiesRecv TcpExt_SyncookiesSent TcpExt_TCPSynRetrans TcpExt_TCPTimeouts
    Tcp_ActiveOpens Tcp_CurrEstab Tcp_InErrs Tcp_InSegs Tcp_OutRsts Tcp_OutSegs Tcp_PassiveOpens Tcp_RetransSegs
    Udp6_InDatagrams Udp6_InErrors Udp6_NoPorts Udp6_OutDatagrams Udp6_RcvbufErrors Udp6_SndbufErrors
    UdpLite6_InErrors UdpLite_InErrors Udp_InDatagrams Udp_InErrors Udp_NoPorts Udp_OutDatagrams
    Udp_RcvbufErrors Udp_SndbufErrors""")
_VMSTAT = _words("oom_kill pgfault pgmajfault pgpgin pgpgout pswpin pswpout")
_SOCKSTAT = _words("""FRAG6_inuse FRAG6_memory FRAG_inuse FRAG_memory RAW6_inuse RAW_inuse TCP6_inuse TCP_alloc
    TCP_inuse TCP_mem TCP_mem_bytes TCP_orphan TCP_tw UDP6_inuse UDPLITE6_inuse UDPLITE_inuse UDP_inuse UDP_mem
    UDP_mem_bytes sockets_used""")
# Single-value series; a trailing "+" marks a counter.
_SCALARS = _words("""node_load1 node_load5 node_load15 node_boot_time_seconds node_context_switches_total+
    node_forks_total+ node_intr_total+ node_procs_blocked node_procs_running node_entropy_available_bits
    node_filefd_allocated node_filefd_maximum node_time_seconds node_timex_offset_seconds node_timex_sync_status
    node_nf_conntrack_entries node_nf_conntrack_entries_limit node_pressure_cpu_waiting_seconds_total+
    node_pressure_io_stalled_seconds_total+ node_pressure_io_waiting_seconds_total+
    node_pressure_memory_stalled_seconds_total+ node_pressure_memory_waiting_seconds_total+
    node_exporter_build_info node_os_info node_uname_info""")
_SCRAPE_COLLECTORS = _words("""arp cpu cpufreq diskstats filesystem loadavg meminfo netdev netstat pressure schedstat
    sockstat softnet stat time vmstat""")


def node_series(n_cpus: int = 32, disks: int = 4, netdevs: int = 4, total: int = 800) -> list[NodeSeries]:
    """The series one node_exporter (Linux, `--no-collector.systemd`) exposes on a 32-core compute
    node, cut to exactly `total`: CPU per core × mode, cpufreq, schedstat, disks, filesystems,
    network devices, memory, netstat, vmstat, sockstat, load, PSI..."""
    out: list[NodeSeries] = []
    for cpu in range(n_cpus):
        c = str(cpu)
        out.extend(NodeSeries("node_cpu_seconds_total", (("cpu", c), ("mode", m)), True) for m in _CPU_MODES)
        out.append(NodeSeries("node_cpu_scaling_frequency_hertz", (("cpu", c),), False))
        out.append(NodeSeries("node_schedstat_running_seconds_total", (("cpu", c),), True))
        out.append(NodeSeries("node_schedstat_waiting_seconds_total", (("cpu", c),), True))
        out.append(NodeSeries("node_softnet_processed_total", (("cpu", c),), True))
    for d in range(disks):
        dev = f"nvme{d}n1" if d < 2 else f"sd{'abcdefgh'[d - 2]}"
        out.extend(NodeSeries(m, (("device", dev),), m.endswith("_total")) for m in _DISK_METRICS)
    for device, fstype, mountpoint in _FILESYSTEMS:
        labels = (("device", device), ("fstype", fstype), ("mountpoint", mountpoint))
        out.extend(NodeSeries(m, labels, False) for m in _FS_METRICS)
    for i in range(netdevs):
        dev = ("eth0", "ib0", "lo", "docker0", "eth1", "ib1")[i % 6]
        for direction in ("receive", "transmit"):
            out.extend(
                NodeSeries(f"node_network_{direction}_{k}_total", (("device", dev),), True) for k in _NET_DIRECTIONAL
            )
        out.extend(NodeSeries(m, (("device", dev),), True) for m in _NET_EXTRA)
        out.extend(NodeSeries(m, (("device", dev),), False) for m in _NET_GAUGES)
    out.extend(NodeSeries(f"node_memory_{m}_bytes", (), False) for m in _MEMORY)
    out.extend(NodeSeries(f"node_netstat_{m}", (), True) for m in _NETSTAT)
    out.extend(NodeSeries(f"node_vmstat_{m}", (), True) for m in _VMSTAT)
    out.extend(NodeSeries(f"node_sockstat_{m}", (), False) for m in _SOCKSTAT)
    out.extend(NodeSeries(m.rstrip("+"), (), m.endswith("+")) for m in _SCALARS)
    for name in _SCRAPE_COLLECTORS:
        out.append(NodeSeries("node_scrape_collector_success", (("collector", name),), False))
        out.append(NodeSeries("node_scrape_collector_duration_seconds", (("collector", name),), False))
    # Cut or pad (with further per-CPU interrupt counters, as /proc/interrupts gives) to `total`.
    irq = 0
    while len(out) < total:
        labels = (("cpu", str(irq % n_cpus)), ("devices", f"irq{irq // n_cpus}"), ("type", "PCI-MSI"))
        out.append(NodeSeries("node_interrupts_total", labels, True))
        irq += 1
    return out[:total]
