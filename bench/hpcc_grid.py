"""The HPCC configuration grid of bench/hpcc_runs.py: which combinations exist, which cannot run
and why, and the exact command line of each (pure functions, tested), plus the two pieces of
machinery a run needs: a veth pair between two network namespaces and a Charliecloud image
directory made of the host's own /usr.

What was found to work here (Debian 12, Open MPI 4.1.4, 2 cores), and is encoded below:
- 4 ranks on 2 cores: `--oversubscribe`, `--bind-to core:overload-allowed`, and
  `mpi_yield_when_idle` set explicitly (1 when ranks > cores) so that every transport and runtime
  polls the same way; a busy-polling rank sharing a core with its peer costs a scheduler slice
  per message (ms pingpong latencies).
- tcp-veth: mpirun runs in namespace A with a hostfile naming the two veth addresses; the
  launcher reaches "host" B through `plm_rsh_agent`, a script that runs orted under
  `ip netns exec B`. Both namespaces see the same 2 cores, so with core binding a rankfile puts
  the ranks alternately in A and B and on alternate cores (plain `--bind-to core` binds the first
  rank of each namespace to core 0: two ranks on one core, 1.2 ms latency).
- bwrap-private wraps the whole mpirun (launch=job): a private namespace around each rank fails
  in MPI_Init ("OPAL ERROR: Unreachable": the rank cannot reach its launcher's PMIx server).
- charliecloud wraps each rank (launch=rank, the usual host-MPI hybrid); its user namespace
  makes vader's CMA single copy unavailable, and with the default the run hung (> 90 s), so sm
  runs under it use `btl_vader_single_copy_mechanism none`.
- crun-private runs the whole mpirun in a crun 1.8 container (pid, network, ipc, uts and mount
  namespaces; a bundle whose rootfs binds the host's /usr and /etc, so the same hpcc and Open
  MPI run). crun refuses this host's hybrid cgroup v1/v2 layout ("cgroups in hybrid mode not
  supported") even with `--cgroup-manager=disabled`, so it starts inside a private mount
  namespace whose /sys/fs/cgroup is the cgroup2 hierarchy alone, and creates no cgroup: a
  container of namespaces without resource limits. podman is not installed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import product
from pathlib import Path

__all__ = [
    "BINDINGS",
    "RANKS",
    "RUNTIMES",
    "TRANSPORTS",
    "Config",
    "Launch",
    "Veth",
    "charliecloud_image",
    "crun_bundle",
    "grid",
    "host_facts",
    "hpccinf",
    "infeasible",
    "job_argv",
    "launch_argv",
    "veth_pair",
]

RANKS = (1, 2, 4)
BINDINGS = ("core", "none")
TRANSPORTS = ("sm", "tcp-lo", "tcp-veth")
RUNTIMES = ("bare", "bwrap-host", "bwrap-private", "charliecloud", "crun-private")
PRIVATE_NET = frozenset({"bwrap-private", "crun-private"})  # and both wrap the whole job
EXAMPLE_INPUT = Path("/usr/share/doc/hpcc/examples/_hpccinf.txt")
VETH_A, VETH_B, VETH_NET = "10.78.0.1", "10.78.0.2", "10.78.0.0/24"


@dataclass(frozen=True, order=True)
class Config:
    ranks: int
    binding: str
    transport: str
    runtime: str

    @property
    def network_mode(self) -> str:
        return "private" if self.runtime in PRIVATE_NET else "host"

    @property
    def launch(self) -> str:
        return "none" if self.runtime == "bare" else "job" if self.runtime in PRIVATE_NET else "rank"

    @property
    def hosts(self) -> int:
        return 2 if self.transport == "tcp-veth" else 1

    def __str__(self) -> str:
        return f"{self.ranks} rank(s) {self.binding} {self.transport} {self.runtime}"


def infeasible(config: Config) -> str | None:
    """Why `config` cannot run on one machine, or None."""
    if config.transport == "tcp-veth" and config.ranks < 2:
        return "one rank cannot span two network namespaces"
    if config.transport == "tcp-veth" and config.network_mode == "private":
        return "a private network namespace holds only loopback: no veth reaches the second namespace"
    return None


def grid(
    ranks: Sequence[int] = RANKS,
    bindings: Sequence[str] = BINDINGS,
    transports: Sequence[str] = TRANSPORTS,
    runtimes: Sequence[str] = RUNTIMES,
) -> tuple[list[Config], list[tuple[Config, str]]]:
    """The runnable configurations and the infeasible ones with their reason."""
    runnable: list[Config] = []
    skipped: list[tuple[Config, str]] = []
    for r, b, t, rt in product(ranks, bindings, transports, runtimes):
        config = Config(r, b, t, rt)
        reason = infeasible(config)
        if reason is None:
            runnable.append(config)
        else:
            skipped.append((config, reason))
    return runnable, skipped


def process_grid(ranks: int) -> tuple[int, int]:
    """HPL's P x Q for `ranks`: as square as possible, P <= Q."""
    p = max(d for d in range(1, int(ranks**0.5) + 1) if ranks % d == 0)
    return p, ranks // p


def hpccinf(example: str, n: int, ranks: int) -> str:
    """Debian's example input with HPL's N and process grid set (the other sizes follow N)."""
    p, q = process_grid(ranks)
    lines = example.splitlines()
    for index, tail, value in ((5, "Ns", n), (10, "Ps", p), (11, "Qs", q)):
        if not lines[index].rstrip().endswith(tail):
            raise ValueError(f"line {index + 1} of the example hpccinf.txt is {lines[index]!r}, expected its {tail}")
        lines[index] = f"{value:<13}{tail}"
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Launch:
    """Where the files of one campaign live (the agent script, hostfile, Charliecloud image) and
    the one run folder every run starts in (hpcc reads hpccinf.txt and writes hpccoutf.txt there)."""

    workdir: Path
    cores: int
    veth: Veth | None = None
    image: Path | None = None
    bundle: Path | None = None

    @property
    def rundir(self) -> Path:
        return self.workdir / "run"


def mpi_options(config: Config, cores: int, workdir: Path) -> list[str]:
    """The mpirun options that differ between configurations (recorded in every row)."""
    opts = ["--mca", "mpi_yield_when_idle", "1" if config.ranks > cores else "0"]
    if config.transport == "sm":
        opts += ["--mca", "btl", "self,vader"]
        if config.runtime == "charliecloud":
            opts += ["--mca", "btl_vader_single_copy_mechanism", "none"]
    elif config.transport == "tcp-lo":
        opts += ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]
    else:
        opts += ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", VETH_NET]
        opts += ["--mca", "oob_tcp_if_include", VETH_NET, "--hostfile", str(workdir / "hosts")]
        opts += ["--mca", "plm_rsh_agent", str(workdir / "agent.sh")]
    if config.binding == "none":
        opts += ["--bind-to", "none"] + (["--map-by", "node"] if config.hosts == 2 else [])
    elif config.hosts == 2:
        opts += ["--rankfile", str(workdir / f"rankfile-{config.ranks}")]
    else:
        opts += ["--bind-to", "core:overload-allowed"]
    return opts


def rankfile(ranks: int, cores: int) -> str:
    """Ranks alternate between the two namespaces and, within each, between cores, so every core
    carries ranks / cores of them (the two namespaces share the same cores)."""
    hosts = (VETH_A, VETH_B)
    return "".join(f"rank {i}={hosts[i % 2]} slot={(i + i // 2) % cores}\n" for i in range(ranks))


def launch_argv(config: Config, launch: Launch, hpcc: str = "/usr/bin/hpcc", name: str = "ctwin-hpcc") -> list[str]:
    """The whole command of one run, started in `launch.rundir`; `name` names a crun container.
    A crun run executes `job_argv` written to `launch.rundir / "job.sh"` (see crun_bundle)."""
    if config.runtime == "crun-private":
        if launch.bundle is None:
            raise ValueError("crun runs need a bundle (crun_bundle)")
        hybrid_fix = "mount --make-rprivate / && umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup"
        crun = f"exec crun --cgroup-manager=disabled run --bundle {launch.bundle} {name}"
        return ["unshare", "--mount", "sh", "-c", f"{hybrid_fix} && {crun}"]
    argv = job_argv(config, launch, hpcc)
    if config.runtime == "bwrap-private":
        argv = ["bwrap", "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent", *argv]
    if config.transport == "tcp-veth":
        if launch.veth is None:
            raise ValueError("tcp-veth runs need the veth pair (veth_pair)")
        argv = ["ip", "netns", "exec", launch.veth.a, *argv]
    return argv


def job_argv(config: Config, launch: Launch, hpcc: str = "/usr/bin/hpcc") -> list[str]:
    """mpirun and its ranks, each rank wrapped in a per-rank runtime if any."""
    rank_cmd = [hpcc]
    if config.runtime == "bwrap-host":
        rank_cmd = ["bwrap", "--dev-bind", "/", "/", "--die-with-parent", hpcc]
    elif config.runtime == "charliecloud":
        if launch.image is None:
            raise ValueError("charliecloud runs need an image directory (charliecloud_image)")
        rank_cmd = ["ch-run", *_ch_binds(launch.rundir), "-c", "/work", str(launch.image), "--", hpcc]
    mpirun = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(config.ranks)]
    return [*mpirun, *mpi_options(config, launch.cores, launch.workdir), *rank_cmd]


def host_facts(proc: Path = Path("/proc")) -> dict[str, float]:
    """Load and pressure now: the machine is shared, so every row says how busy it was."""
    load1 = float((proc / "loadavg").read_text().split()[0])
    facts = {"load1_start": load1}
    for kind in ("cpu", "memory"):
        facts[f"{kind}_pressure_some_avg10_start"] = _pressure_some_avg10((proc / "pressure" / kind).read_text())
    return facts


def _pressure_some_avg10(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("some "):
            fields = dict(part.split("=", 1) for part in line.split()[1:])
            return float(fields["avg10"])
    raise ValueError(f"no 'some' line in a /proc/pressure file: {text!r}")


# ------------------------------------------------------------------------------------ machinery
@dataclass(frozen=True)
class Veth:
    a: str
    b: str


@contextmanager
def veth_pair(workdir: Path, cores: int) -> Iterator[Veth]:
    """Namespaces A (VETH_A) and B (VETH_B) joined by an unshaped veth pair, with the hostfile,
    rankfiles and rsh agent tcp-veth runs need; both namespaces are deleted on exit."""
    token = secrets.token_hex(3)
    veth = Veth(f"ctwin-hpcc-{token}-a", f"ctwin-hpcc-{token}-b")
    dev_a, dev_b = f"hpc{token}a", f"hpc{token}b"
    made: list[str] = []
    try:
        for ns in (veth.a, veth.b):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        for ns, dev, addr in ((veth.a, dev_a, VETH_A), (veth.b, dev_b, VETH_B)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        agent = workdir / "agent.sh"
        agent.write_text(
            "#!/bin/sh\n# plm_rsh_agent: $1 is the host (a veth address), the rest the orted command\n"
            f"host=$1; shift\ncase $host in {VETH_B}) ns={veth.b};; *) ns={veth.a};; esac\n"
            'exec ip netns exec "$ns" sh -c "$*"\n'
        )
        agent.chmod(0o755)
        per_host = max(1, cores // 2)
        (workdir / "hosts").write_text(f"{VETH_A} slots={per_host}\n{VETH_B} slots={per_host}\n")
        for ranks in RANKS:
            (workdir / f"rankfile-{ranks}").write_text(rankfile(ranks, cores))
        yield veth
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=30)
        subprocess.run(["ip", "link", "del", dev_a], capture_output=True, check=False, timeout=30)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode} (needs root and iproute2)")


def charliecloud_image(root: Path) -> Path:
    """An image directory for ch-run that is the host's /usr (bound at run time) plus the few /etc
    files a dynamically linked MPI program needs: the container runs the host's hpcc and Open MPI,
    so only the runtime differs from a bare run."""
    image = root / "ch-image"
    for sub in ("usr", "etc/alternatives", "work", "tmp", "dev", "proc", "sys", "home", "root", "run", "var/tmp"):
        (image / sub).mkdir(parents=True, exist_ok=True)
    for top in ("bin", "lib", "lib64", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            (image / top).symlink_to(os.readlink(host))
        elif host.is_dir():
            (image / top).mkdir(exist_ok=True)
    for name in ("passwd", "group", "hosts", "resolv.conf"):
        (image / "etc" / name).touch()  # ch-run binds its own passwd and group over these
    for name in ("ld.so.cache", "nsswitch.conf"):
        if (Path("/etc") / name).exists():
            shutil.copy2(Path("/etc") / name, image / "etc" / name)
    if Path("/etc/openmpi").is_dir():
        shutil.copytree("/etc/openmpi", image / "etc" / "openmpi", dirs_exist_ok=True)
    return image


def _ch_binds(workdir: Path) -> list[str]:
    binds = ["-b", "/usr:/usr", "-b", "/etc/alternatives:/etc/alternatives", "-b", f"{workdir}:/work"]
    for top in ("bin", "lib", "lib64", "sbin"):
        host = Path("/") / top
        if host.is_dir() and not host.is_symlink():
            binds += ["-b", f"{host}:{host}"]
    return binds


def crun_bundle(root: Path, rundir: Path) -> Path:
    """An OCI bundle whose rootfs is empty but for binds of the host's /usr, /etc and library
    folders, `rundir` as /work and a private /tmp; its process runs /work/job.sh, which the
    runner writes per run (so one bundle serves the whole campaign)."""
    bundle = root / "crun-bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    subprocess.run(["crun", "spec", "--bundle", str(bundle)], check=True, capture_output=True, timeout=30)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, cwd="/work", args=["/bin/sh", "/work/job.sh"])
    spec["process"]["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root"]
    caps = spec["process"].get("capabilities", {})
    spec["process"]["capabilities"] = {kind: sorted({*names, "CAP_SYS_PTRACE"}) for kind, names in caps.items()}
    spec["root"] = {"path": "rootfs", "readonly": False}
    for top in ("usr", "etc", "bin", "lib", "lib64", "sbin"):
        if (Path("/") / top).exists():
            spec["mounts"].append(
                {"destination": f"/{top}", "type": "bind", "source": f"/{top}", "options": ["rbind", "ro"]}
            )
    spec["mounts"].append({"destination": "/work", "type": "bind", "source": str(rundir), "options": ["rbind", "rw"]})
    spec["mounts"].append(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
    )
    spec["linux"].pop("seccomp", None)
    spec["linux"].pop("resources", None)
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    return bundle
