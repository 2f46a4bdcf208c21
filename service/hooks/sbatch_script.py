"""What an sbatch submission asks for: its `#SBATCH` directives and command-line options, read
the way sbatch reads them, so `ctwin sbatch` can ask for advice and still hand sbatch the user's
own arguments untouched.

- `split_command(argv)` separates sbatch's options from the script and the script's arguments.
  It must know which options take a value (`-A proj job.sh`: `proj` is not the script), so the
  tables below list sbatch 22.05's options (`sbatch --help`); long options may be abbreviated to
  any unambiguous prefix, as getopt_long allows. An option it does not know is passed through as a
  flag; sbatch itself then accepts or rejects it.
- `directives(text)` reads the script's `#SBATCH` lines, as sbatch does: from the top, up to the
  first line that is neither blank nor a comment; a directive starts at column 0 with `#SBATCH`
  followed by white space; its words are split like a shell's, and `#` outside quotes starts a
  comment.
- `read_job(argv, script)` interprets the options advice needs; the command line wins over the
  script (sbatch's rule). A value it cannot read is a `SbatchScriptError` naming the file and
  line (or the command-line option) and what would be valid.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "JobSpec",
    "Option",
    "SbatchCommand",
    "SbatchScriptError",
    "directives",
    "parse_memory",
    "parse_slurm_time",
    "read_job",
    "split_command",
]


class SbatchScriptError(ValueError):
    """An option or directive that cannot be read; the message names where it is and the fix."""


# sbatch 22.05 (`sbatch --help`, and the man page's hidden ones): short options taking a value
_SHORT_VALUE = frozenset("aAbBcCdDeFGiJLmMnNopqStwx")
_SHORT_FLAG = frozenset("hHkOQsvVW")
_SHORT_TO_LONG = {
    "a": "array", "A": "account", "b": "begin", "B": "extra-node-info", "c": "cpus-per-task",
    "C": "constraint", "d": "dependency", "D": "chdir", "e": "error", "F": "nodefile", "G": "gpus",
    "i": "input", "J": "job-name", "L": "licenses", "m": "distribution", "M": "clusters", "n": "ntasks",
    "N": "nodes", "o": "output", "p": "partition", "q": "qos", "S": "core-spec", "t": "time",
    "w": "nodelist", "x": "exclude", "h": "help", "H": "hold", "k": "no-kill", "O": "overcommit",
    "Q": "quiet", "s": "oversubscribe", "v": "verbose", "V": "version", "W": "wait",
}  # fmt: skip
_LONG_VALUE = frozenset([
    "account", "acctg-freq", "array", "batch", "bb", "bbf", "begin", "chdir", "cluster", "cluster-constraint",
    "clusters", "comment", "constraint", "container", "core-spec", "cores-per-socket", "cpu-freq",
    "cpus-per-gpu", "cpus-per-task", "deadline", "delay-boot", "dependency", "distribution", "error",
    "exclude", "export-file", "extra-node-info", "gid", "gpu-bind", "gpu-freq", "gpus", "gpus-per-node",
    "gpus-per-socket", "gpus-per-task", "gres", "gres-flags", "hint", "input", "job-name",
    "kill-on-invalid-dep", "licenses", "mail-type", "mail-user", "mcs-label", "mem", "mem-bind",
    "mem-per-cpu", "mem-per-gpu", "mincpus", "network", "nodefile", "nodelist", "nodes", "ntasks",
    "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node", "ntasks-per-socket", "open-mode", "output",
    "partition", "power", "priority", "profile", "qos", "reservation", "signal", "sockets-per-node",
    "switches", "thread-spec", "threads-per-core", "time", "time-min", "tmp", "uid", "wckey", "wrap",
])  # fmt: skip
_LONG_OPTIONAL = frozenset(["exclusive", "export", "get-user-env", "nice", "no-kill", "propagate"])
"""A value only as `--opt=value`."""
_LONG_FLAG = frozenset([
    "contiguous", "help", "hold", "ignore-pbs", "no-requeue", "overcommit", "oversubscribe", "parsable",
    "quiet", "reboot", "requeue", "spread-job", "test-only", "usage", "use-min-nodes", "verbose", "version",
    "wait",
])  # fmt: skip
_LONG_ALL = tuple(sorted(_LONG_VALUE | _LONG_OPTIONAL | _LONG_FLAG))


@dataclass(frozen=True)
class Option:
    """One option as given: its canonical long name (None: unknown to us), its value, the exact
    words it was written as (passed through unchanged) and where it came from."""

    name: str | None
    value: str | None
    words: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class SbatchCommand:
    options: tuple[Option, ...]
    script: str | None
    """None: no script on the command line (sbatch reads it from stdin, or --wrap)."""
    script_args: tuple[str, ...]
    heterogeneous: bool = False
    """`:` separates the components of a heterogeneous job (not advised: passed through)."""


def _long_name(given: str, where: str) -> str | None:
    """The option a (possibly abbreviated) long name means, as getopt_long resolves it."""
    if given in _LONG_ALL:
        return given
    matches = [name for name in _LONG_ALL if name.startswith(given)]
    if len(matches) > 1:
        raise SbatchScriptError(f"{where}: --{given} is ambiguous ({', '.join('--' + m for m in matches)})")
    return matches[0] if matches else None


def parse_options(words: Sequence[str], where: str, *, stop_at_positional: bool) -> tuple[list[Option], int]:
    """Options from `words` up to the first positional word (the script) when `stop_at_positional`;
    returns them and the index where parsing stopped."""
    out: list[Option] = []
    i = 0
    while i < len(words):
        word = words[i]
        here = f"{where} {word!r}" if where == "command line" else where
        if word == "--":
            return out, i + 1
        if word.startswith("--") and len(word) > 2:
            given, eq, value = word[2:].partition("=")
            name = _long_name(given, here)
            if name is None:  # unknown: a flag as written; sbatch decides
                out.append(Option(None, value if eq else None, (word,), here))
            elif eq:
                if name in _LONG_FLAG:
                    raise SbatchScriptError(f"{here}: --{name} takes no value")
                out.append(Option(name, value, (word,), here))
            elif name in _LONG_VALUE:
                if i + 1 >= len(words):
                    raise SbatchScriptError(f"{here}: --{name} needs a value")
                out.append(Option(name, words[i + 1], (word, words[i + 1]), here))
                i += 1
            else:
                out.append(Option(name, None, (word,), here))
        elif word.startswith("-") and len(word) > 1:
            # a cluster of short flags, the last of which may take a value (`-vn4`, `-n 4`)
            j = 1
            while j < len(word):
                ch = word[j]
                if ch in _SHORT_VALUE:
                    rest = word[j + 1 :]
                    taken: tuple[str, ...]
                    if rest:
                        value, taken = rest, (word,)
                    elif i + 1 < len(words):
                        value, taken = words[i + 1], (word, words[i + 1])
                        i += 1
                    else:
                        raise SbatchScriptError(f"{here}: -{ch} needs a value")
                    out.append(Option(_SHORT_TO_LONG[ch], value, taken if j == 1 else (f"-{ch}{value}",), here))
                    if j > 1:  # the flags before it, as their own words
                        out[-1:-1] = [Option(_SHORT_TO_LONG.get(c), None, (f"-{c}",), here) for c in word[1:j]]
                    break
                j += 1
            else:
                flags = word[1:]
                known = all(c in _SHORT_FLAG for c in flags)
                if len(flags) == 1 or not known:
                    out.append(Option(_SHORT_TO_LONG.get(flags) if len(flags) == 1 else None, None, (word,), here))
                else:
                    out.extend(Option(_SHORT_TO_LONG[c], None, (f"-{c}",), here) for c in flags)
        elif stop_at_positional:
            return out, i
        else:
            raise SbatchScriptError(f"{here}: {word!r} is not an option (a directive holds options only)")
        i += 1
    return out, i


def split_command(argv: Sequence[str]) -> SbatchCommand:
    """sbatch's options, the script and its arguments (everything after the script is the script's)."""
    options, stop = parse_options(argv, "command line", stop_at_positional=True)
    rest = list(argv[stop:])
    if rest and rest[0] == ":":
        return SbatchCommand(tuple(options), None, tuple(rest), heterogeneous=True)
    script = rest[0] if rest else None
    return SbatchCommand(tuple(options), script, tuple(rest[1:]))


_DIRECTIVE = re.compile(r"^#SBATCH(?:[ \t]|$)")


def directives(text: str, source: str = "script") -> tuple[list[Option], bool]:
    """The options of the script's `#SBATCH` lines, and whether a `hetjob` separator was found."""
    options: list[Option] = []
    hetjob = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break  # sbatch stops at the first command
        if not _DIRECTIVE.match(line):
            continue
        where = f"{source}:{number}"
        lexer = shlex.shlex(line[len("#SBATCH") :], posix=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            words = list(lexer)
        except ValueError as exc:
            raise SbatchScriptError(f"{where}: {exc} in {line.strip()!r}: close the quote") from None
        if words in (["hetjob"], ["packjob"]):
            hetjob = True
            continue
        found, _ = parse_options(words, where, stop_at_positional=False)
        options.extend(found)
    return options, hetjob


_TIME = re.compile(
    r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"  # D-HH[:MM[:SS]]
    r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$"  # MM[:SS] or HH:MM:SS
)


def parse_slurm_time(text: str) -> int | None:
    """Seconds of a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; None for
    INFINITE / UNLIMITED. ValueError otherwise."""
    t = text.strip()
    if t.upper() in ("INFINITE", "UNLIMITED"):
        return None
    m = _TIME.match(t)
    if not m:
        raise ValueError(f"{text!r} is not a Slurm time: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None}
    if "d" in g:
        return g["d"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
    if "c" in g:  # HH:MM:SS
        return g["a"] * 3600 + g["b"] * 60 + g["c"]
    return g["a"] * 60 + g.get("b", 0)  # MM or MM:SS


_MEM = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<u>[KMGT]?)B?$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """Bytes of a Slurm memory size: a number with an optional K, M, G or T suffix (M by default)."""
    m = _MEM.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a memory size: use a number with K, M, G or T (M by default), e.g. 4G")
    power = "KMGT".index(m["u"].upper()) + 1 if m["u"] else 2
    return int(float(m["n"]) * 1024**power)


def _count(value: str, what: str) -> int:
    """A count as sbatch takes it; `-N 2-4` is a range whose minimum is what advice plans for."""
    head = value.split("-", 1)[0] if what == "nodes" else value
    if not head.isdigit() or int(head) < 1:
        raise ValueError(f"{value!r} is not a positive whole number")
    return int(head)


def _gpus(value: str) -> int:
    """--gpus and --gpus-per-*: `N` or `TYPE:N`."""
    count = value.rsplit(":", 1)[-1]
    if not count.isdigit():
        raise ValueError(f"{value!r} is not a GPU count: use N or TYPE:N, e.g. 2 or a100:2")
    return int(count)


def _gres_gpus(value: str) -> int:
    """GPUs per node in a --gres list (`gpu:2`, `gpu:a100:2`, `gpu`, `gpu:2,shard:1`)."""
    total = 0
    for item in value.split(","):
        parts = item.split(":")
        if parts[0] != "gpu":
            continue
        count = parts[-1].split("(")[0] if len(parts) > 1 else "1"
        if not count.isdigit():
            if len(parts) == 2:  # gpu:TYPE means one of that type
                count = "1"
            else:
                raise ValueError(f"{value!r}: the GPU count in {item!r} is not a number (use gpu:N or gpu:TYPE:N)")
        total += int(count)
    return total


@dataclass(frozen=True)
class JobSpec:
    """What advice needs of a submission, after the command line has overridden the script."""

    ntasks: int | None = None
    cpus_per_task: int = 1
    nodes: int | None = None
    ntasks_per_node: int | None = None
    time_s: int | None = None
    unlimited_time: bool = False
    mem_per_node_bytes: int | None = None
    mem_per_cpu_bytes: int | None = None
    gpus: int | None = None
    gpus_per_node: int | None = None
    gpus_per_task: int | None = None
    partitions: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    job_name: str | None = None
    comment: str | None = None
    array: str | None = None
    wrap: bool = False
    test_only: bool = False
    parsable: bool = False
    heterogeneous: bool = False
    given: dict[str, str] = field(default_factory=dict)
    """Canonical option name → where its winning value was given (for messages)."""

    @property
    def tasks(self) -> int:
        if self.ntasks is not None:
            return self.ntasks
        if self.nodes is not None and self.ntasks_per_node is not None:
            return self.nodes * self.ntasks_per_node
        return self.nodes or 1  # Slurm: one task per node unless told

    @property
    def cores(self) -> int:
        return self.tasks * self.cpus_per_task

    @property
    def total_gpus(self) -> int:
        if self.gpus is not None:
            return self.gpus
        if self.gpus_per_node is not None:
            return self.gpus_per_node * (self.nodes or 1)
        if self.gpus_per_task is not None:
            return self.gpus_per_task * self.tasks
        return 0

    @property
    def memory_per_node_bytes(self) -> int | None:
        if self.mem_per_node_bytes:  # --mem=0 is "all of the node": no constraint for advice
            return self.mem_per_node_bytes
        if self.mem_per_cpu_bytes:
            return self.mem_per_cpu_bytes * max(1, self.cores // (self.nodes or 1))
        return None


_INTERPRETED = {
    "ntasks", "cpus-per-task", "nodes", "ntasks-per-node", "time", "mem", "mem-per-cpu", "gpus",
    "gres", "gpus-per-node", "gpus-per-task", "partition", "clusters", "cluster", "job-name", "comment",
    "array", "wrap", "test-only", "parsable",
}  # fmt: skip


def _apply(values: dict[str, object], given: dict[str, str], opt: Option) -> None:
    name = opt.name
    if name is None or name not in _INTERPRETED:
        return
    value = opt.value or ""
    try:
        if name in ("ntasks", "cpus-per-task", "ntasks-per-node", "nodes"):
            values[name.replace("-", "_")] = _count(value, name)
        elif name == "time":
            seconds = parse_slurm_time(value)
            values["time_s"], values["unlimited_time"] = seconds, seconds is None
        elif name == "mem":
            values["mem_per_node_bytes"], values["mem_per_cpu_bytes"] = parse_memory(value), None
        elif name == "mem-per-cpu":
            values["mem_per_cpu_bytes"], values["mem_per_node_bytes"] = parse_memory(value), None
        elif name == "gpus":
            values["gpus"] = _gpus(value)
        elif name == "gres":
            values["gpus_per_node"] = _gres_gpus(value)
        elif name in ("gpus-per-node", "gpus-per-task"):
            values[name.replace("-", "_")] = _gpus(value)
        elif name == "partition":
            values["partitions"] = tuple(p for p in value.split(",") if p)
        elif name in ("clusters", "cluster"):
            values["clusters"] = tuple(c for c in value.split(",") if c)
        elif name in ("job-name", "comment", "array"):
            values[name.replace("-", "_")] = value
        else:  # wrap, test-only, parsable
            values[name.replace("-", "_")] = True
    except ValueError as exc:
        raise SbatchScriptError(f"{opt.where}: --{name} {exc}") from None
    given[name] = opt.where


def read_job(command: SbatchCommand, script_text: str | None, source: str = "script") -> JobSpec:
    """The job the submission asks for: the script's directives first, the command line over them."""
    script_options: list[Option] = []
    hetjob = False
    if script_text is not None:
        script_options, hetjob = directives(script_text, source)
    values: dict[str, object] = {}
    given: dict[str, str] = {}
    for opt in [*script_options, *command.options]:
        _apply(values, given, opt)
    return JobSpec(**values, heterogeneous=hetjob or command.heterogeneous, given=given)  # type: ignore[arg-type]
