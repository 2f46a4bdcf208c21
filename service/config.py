"""Typed configuration: one YAML file, every key checked, every error reported with its location.

Collector entries are flat: the pipeline's keys (type, name, interval, timeout, enabled) sit next
to the collector's own keys, which are validated by that collector's `config_model`. Unknown keys
anywhere are errors, reported as `file:line: sites[0].collectors[1].roo: unknown key`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from collectors import registry
from collectors.base import CollectorConfig
from collectors.kubernetes import KubernetesConfig
from collectors.link_probe import LinkProbeConfig
from collectors.link_probe_wire import parse_address
from service.config_influx import InfluxConfig, RemoteWriteConfig
from service.config_schedulers import SchedulersConfig
from service.timeparse import parse_size
from telemetry.redact import redact
from telemetry.schema import ByteSize, Duration, StrictModel

__all__ = ["Config", "ConfigError", "ConfigProblem", "LoadedConfig", "load_config"]

SiteKind = Literal["hpc", "htc", "cloud", "edge"]
PIPELINE_KEYS = ("type", "name", "interval", "timeout", "enabled")


class StoreConfig(StrictModel):
    backend: Literal["duckdb", "influx"] = Field(
        "duckdb", description="influx: samples also go to InfluxDB (store.influx); DuckDB keeps serving reads"
    )
    path: str | None = Field(None, description="DuckDB file; default <data_dir>/ctwin.duckdb")
    retention: Duration = Field(30 * 86400.0, description="Samples older than this are deleted")
    memory_limit: str = "1GB"
    influx: InfluxConfig | None = Field(None, description="Where samples are mirrored with backend: influx")
    remote_write: RemoteWriteConfig | None = Field(
        None, description="Samples also sent to a Prometheus remote-write receiver (any backend)"
    )

    @model_validator(mode="after")
    def _influx_block(self) -> StoreConfig:
        if self.backend == "influx" and self.influx is None:
            raise ValueError("backend: influx needs a store.influx block (url, org, bucket, token_file or token_env)")
        if self.backend != "influx" and self.influx is not None:
            raise ValueError("store.influx is set but backend is not influx; set backend: influx to use it")
        return self


class PipelineConfig(StrictModel):
    buffer_samples: int = Field(2_000_000, gt=0, description="Bound of the sink buffer; beyond it, drop")
    max_batch_samples: int = Field(500_000, gt=0, description="Largest single store append")
    retry_samples: int = Field(
        500_000, ge=0, description="Samples the store refused, kept to retry; beyond it the oldest are dropped"
    )


class CollectorEntry(BaseModel):
    """Pipeline keys; everything else is kept for the collector's own model to validate."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    type: str
    name: str | None = None
    interval: Duration = 10.0
    timeout: Duration | None = None
    enabled: bool = True

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


SITE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class PartitionConfig(StrictModel):
    name: str = Field(min_length=1, max_length=128)
    max_walltime: Duration | None = None
    max_nodes: int | None = Field(None, ge=1)
    max_cores: int | None = Field(None, ge=1)
    gpus_per_node: int = Field(0, ge=0)


class PricingConfig(StrictModel):
    """An HPC allocation rate or a cloud's on-demand price; egress is billed where data leaves."""

    core_hour: float = Field(0.0, ge=0, description="Price per core-hour")
    gpu_hour: float = Field(0.0, ge=0, description="Price per GPU-hour")
    egress_per_gb: float = Field(0.0, ge=0, description="Price per GB leaving the site")
    currency: str = Field("EUR", min_length=1, max_length=8)


class EnergyConfig(StrictModel):
    """Green Algorithms' model; the carbon intensity is given, or the country's default from the
    shipped table (codecarbon's; twin/advice/data), else the world average (475 gCO2e/kWh)."""

    tdp_per_core_w: float = Field(12.0, gt=0, le=1000)
    gpu_tdp_w: float = Field(250.0, gt=0, le=5000)
    usage: float = Field(1.0, gt=0, le=1)
    pue: float = Field(1.56, ge=1, le=5)
    carbon_intensity: float | None = Field(None, ge=0, le=2000, description="gCO2e per kWh")
    country: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 3166-1 alpha-3, e.g. SWE")


class ProvisioningConfig(StrictModel):
    p10: Duration = 45.0
    p50: Duration = 90.0
    p90: Duration = 240.0

    @model_validator(mode="after")
    def _ordered(self) -> ProvisioningConfig:
        if not self.p10 <= self.p50 <= self.p90:
            raise ValueError("provisioning delays must be ordered p10 <= p50 <= p90")
        return self


class CloudConfig(StrictModel):
    """A cloud site has no queue: an instance comes up after the provisioning delay, within a quota."""

    provisioning: ProvisioningConfig = ProvisioningConfig()
    quota_cores: int | None = Field(None, ge=1)
    quota_gpus: int | None = Field(None, ge=0)


class PushConfig(StrictModel):
    """A site whose telemetry a remote `ctwin agent` pushes to `POST /v1/ingest` (no local collectors
    needed). Only tokens named here (with the `ingest` scope) may write the site's samples and jobs."""

    tokens: list[str] = Field(
        min_length=1, description="Names of the API tokens (ingest scope) allowed to push this site's data"
    )
    interval: Duration = Field(
        10.0, description="How often the agent pushes; the site turns stale after 3 of these without a batch"
    )


class SiteContainersConfig(StrictModel):
    """What a site forces of a job's container configuration: its runtime, the network namespace
    that runtime gives each container, its fabric, its pinning policy (unset: the job's own)."""

    runtime: str | None = Field(None, min_length=1, max_length=64)
    network: Literal["host", "private"] | None = None
    fabric: str | None = Field(None, min_length=1, max_length=32)
    affinity: Literal["none", "cpu", "cpu+memory"] | None = None
    containers_per_node: int | None = Field(None, ge=1, le=1024)


class SiteConfig(StrictModel):
    name: str = Field(pattern=SITE_NAME)
    kind: SiteKind = "edge"
    description: str = ""
    nodes: list[str] = Field(default_factory=list, description="Hosts expected at the site; absent ones show as down")
    collectors: list[CollectorEntry] = Field(default_factory=list)
    speed: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Relative speed: jobs run runtime / speed here; default: learned from the same users' same"
        " requests run here and at the home site (at least 20 pairs), else 1",
    )
    cores_per_node: int | None = Field(None, ge=1)
    memory_per_node_gb: float | None = Field(None, gt=0)
    gpus: int = Field(0, ge=0, description="GPUs at the site")
    max_walltime: Duration | None = None
    partitions: list[PartitionConfig] = Field(default_factory=list)
    pricing: PricingConfig = PricingConfig()
    energy: EnergyConfig = EnergyConfig()
    cloud: CloudConfig | None = Field(None, description="Only for kind: cloud (default provisioning if omitted)")
    push: PushConfig | None = Field(None, description="Pushed by a remote `ctwin agent` through /v1/ingest")
    containers: SiteContainersConfig | None = Field(
        None, description="What the site forces of a job's container configuration (the advice predicts its effect)"
    )

    @model_validator(mode="after")
    def _cloud_only(self) -> SiteConfig:
        if self.cloud is not None and self.kind != "cloud":
            raise ValueError(f"site {self.name!r}: a `cloud` block needs kind: cloud (it is {self.kind})")
        return self


class AdviceConfig(StrictModel):
    home: str | None = Field(None, description="Where a job runs without advice; default: the first site")
    max_data_age: Duration = Field(300.0, description="A site whose data is older is not advised")
    herding_ttl: Duration = Field(600.0, description="Advice handed out counts as load there this long")
    stay_home: bool = Field(True, description="Recommend home when moving gains less than the band")


class LinkConfig(StrictModel):
    """A network path between two sites. Capacity and latency are what the operator knows; when
    `interface` names a device of this host, its netdev counters give the measured traffic."""

    between: tuple[str, str]
    description: str = ""
    bandwidth_gbps: float | None = Field(None, gt=0)
    latency_ms: float | None = Field(None, ge=0)
    interface: str | None = None


class ProbeConfig(StrictModel):
    """The link-probe endpoint `ctwin serve` runs for `link_probe` collectors at other sites to
    measure against (service.probe_endpoint). Off unless `listen` is set."""

    listen: str | None = Field(None, description="ADDR:PORT of the probe endpoint (TCP and UDP); unset: none")
    max_bytes: ByteSize = Field(256 * 2**20, gt=0, description="Largest transfer one probe may ask for")
    max_seconds: Duration = Field(10.0, description="Longest transfer one probe may ask for")
    max_clients: int = Field(4, ge=1, le=1000, description="Transfers at once; one more is refused as busy")

    @model_validator(mode="after")
    def _listen(self) -> ProbeConfig:
        if self.listen is not None:
            parse_address(self.listen, listen=True)
        return self


class ServeConfig(StrictModel):
    listen: str = Field("127.0.0.1", description="Address `ctwin serve` binds")
    port: int = Field(8080, ge=1, le=65535)
    max_body: Annotated[int, BeforeValidator(lambda v: int(parse_size(v)))] = Field(
        4 * 2**20, ge=1024, description="Largest request body (413 beyond it); e.g. 4MiB"
    )
    max_json_depth: int = Field(64, ge=2, le=1000, description="Deepest nesting of a JSON body (400 beyond it)")
    max_expensive_requests: int = Field(
        2, ge=1, le=10_000, description="Queries, exports, forecasts and advice at once; one more gets 503"
    )
    max_ingest_rows: int = Field(
        100_000, ge=1, le=10_000_000, description="Most samples (or job rows) one /v1/ingest batch may hold (413)"
    )


OpenEndpoint = Literal["/healthz", "/readyz", "/metrics", "/"]
"""`/` is the Dash twin (the browser UI); the /v1 API always needs a token."""
_OPEN_BY_DEFAULT: tuple[OpenEndpoint, ...] = ("/healthz", "/readyz", "/metrics", "/")


class AuthConfig(StrictModel):
    tokens_file: str | None = Field(None, description="Hashed API tokens; default <data_dir>/tokens.json")
    open_endpoints: list[OpenEndpoint] = Field(
        default_factory=lambda: list(_OPEN_BY_DEFAULT),
        description="Served without a token; default: all four on loopback, only the probes beyond it",
    )
    session_idle: Duration = Field(
        12 * 3600.0, gt=0, description="A browser session (set by /login) ends after this long unused"
    )
    session_max_age: Duration = Field(
        24 * 3600.0, gt=0, description="...and at the latest this long after sign-in (never after its token)"
    )


class ModelsConfig(StrictModel):
    dir: str | None = Field(
        None,
        description="Learned-model artefacts (`ctwin train --out`); default <data_dir>/models. Only artefacts "
        "here whose sha256 matches their card are loaded; a newly trained one is picked up without a restart.",
    )


class PrivacyConfig(StrictModel):
    salt: str | None = Field(
        None,
        min_length=16,
        description="Secret salt for pseudonymising users and groups in exports; default: a random salt "
        "kept in <data_dir>/pseudonym.salt. Never exported.",
    )


def _default_sites() -> list[SiteConfig]:
    """This machine, plus two HPC sites replayed from real logs shipped in the package, so a new
    user with no cluster still sees a living continuum (one trace minute per wall second)."""
    return [
        SiteConfig(
            name="local",
            kind="edge",
            description="This machine",
            collectors=[
                CollectorEntry(type="node", interval=5.0),
                CollectorEntry(type="containers", interval=5.0),
                CollectorEntry(type="interconnect", interval=5.0),
            ],
        ),
        SiteConfig(
            name="kth-sp2",
            kind="hpc",
            description="KTH IBM SP2 (100 nodes), replayed from the Parallel Workloads Archive log of 1996-97",
            pricing=PricingConfig(core_hour=0.02),
            energy=EnergyConfig(country="SWE"),
            collectors=[
                CollectorEntry.model_validate(
                    {
                        "type": "replay",
                        "interval": 5.0,
                        "trace": "KTH-SP2-1996-2.1-cln.swf.gz",
                        "speed": 60.0,
                        "start_offset": "30d",
                    }
                )
            ],
        ),
        SiteConfig(
            name="sdsc-sp2",
            kind="hpc",
            description="SDSC IBM SP2 (128 nodes), replayed from the Parallel Workloads Archive log of 1998-2000",
            pricing=PricingConfig(core_hour=0.02),
            energy=EnergyConfig(country="USA"),
            collectors=[
                CollectorEntry.model_validate(
                    {
                        "type": "replay",
                        "interval": 5.0,
                        "trace": "SDSC-SP2-1998-4.2-cln.swf.gz",
                        "speed": 60.0,
                        "start_offset": "30d",
                    }
                )
            ],
        ),
        SiteConfig(
            name="cloud-eu",
            kind="cloud",
            description="illustrative on-demand cloud region: no live data, its price, quota and provisioning delay"
            " come from this config",
            speed=1.0,
            pricing=PricingConfig(core_hour=0.048, gpu_hour=2.5, egress_per_gb=0.09),
            energy=EnergyConfig(pue=1.2, country="IRL"),
            cloud=CloudConfig(quota_cores=256, quota_gpus=8),
            gpus=8,
        ),
    ]


def _default_links() -> list[LinkConfig]:
    return [
        LinkConfig(
            between=("local", "kth-sp2"),
            description="illustrative: replayed sites have no real network path",
            bandwidth_gbps=10.0,
            latency_ms=30.0,
        ),
        LinkConfig(
            between=("local", "sdsc-sp2"),
            description="illustrative: replayed sites have no real network path",
            bandwidth_gbps=10.0,
            latency_ms=80.0,
        ),
        LinkConfig(
            between=("local", "cloud-eu"),
            description="illustrative: this machine's uplink to a cloud region",
            bandwidth_gbps=1.0,
            latency_ms=25.0,
        ),
    ]


class Config(StrictModel):
    data_dir: str = "./data"
    host: str | None = Field(None, description="Value of the host label; default: this machine's name")
    store: StoreConfig = StoreConfig()
    pipeline: PipelineConfig = PipelineConfig()
    serve: ServeConfig = ServeConfig()
    auth: AuthConfig = AuthConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    models: ModelsConfig = ModelsConfig()
    advice: AdviceConfig = AdviceConfig()
    schedulers: SchedulersConfig = SchedulersConfig()
    sites: list[SiteConfig] = Field(default_factory=_default_sites)
    links: list[LinkConfig] = Field(default_factory=list)
    probe: ProbeConfig = ProbeConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_topology_links(cls, data: Any) -> Any:
        """The default sites come with their links; a config that lists its own sites starts with none."""
        if isinstance(data, dict) and "sites" not in data and "links" not in data:
            return {**data, "links": _default_links()}
        return data

    def host_name(self) -> str:
        return self.host or socket.gethostname()


@dataclass(frozen=True)
class ConfigProblem:
    location: str
    message: str
    line: int | None = None

    def __post_init__(self) -> None:
        # messages quote what was written (a URL with its password, a YAML line): `ctwin config
        # check` prints them and CI logs keep them, so a credential never survives into one
        object.__setattr__(self, "message", redact(self.message))

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.location or '(top level)'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


@dataclass(frozen=True)
class CollectorSpec:
    site: SiteConfig
    entry: CollectorEntry
    config: CollectorConfig

    @property
    def name(self) -> str:
        return self.entry.name or f"{self.site.name}/{self.entry.type}"


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    collectors: list[CollectorSpec]
    source: str

    def data_dir(self, override: str | Path | None = None) -> Path:
        return Path(override if override is not None else self.config.data_dir)

    def store_path(self, data_dir: str | Path | None = None) -> Path:
        if self.config.store.path:
            return Path(self.config.store.path)
        return self.data_dir(data_dir) / "ctwin.duckdb"

    def models_path(self, data_dir: str | Path | None = None) -> Path:
        if self.config.models.dir:
            return Path(self.config.models.dir)
        return self.data_dir(data_dir) / "models"

    def tokens_path(self, data_dir: str | Path | None = None) -> Path:
        if self.config.auth.tokens_file:
            return Path(self.config.auth.tokens_file)
        return self.data_dir(data_dir) / "tokens.json"


# ------------------------------------------------------------------ locations
Path_ = tuple[str | int, ...]


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Walk:
    """One pass over the composed YAML: the line of every key path, and what YAML itself lets by.
    A repeated key is legal YAML whose last value silently wins (a second `auth:` block would
    replace the first), and an alias inside the block it names makes safe_load build a cycle."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}
        self.problems: list[ConfigProblem] = []
        self._keys = yaml.SafeLoader("")  # reads a key as safe_load does: 'a' and a, 1 and 0x1 are one key
        self._open: set[int] = set()  # the nodes enclosing the current one

    def node(self, node: yaml.Node, path: Path_) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self._open:
            self.problems.append(
                ConfigProblem(_render_loc(path), "an alias refers to a block that contains it", self.lines[path])
            )
            return
        self._open.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.node(item, (*path, i))
        self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> None:
        first: dict[object, int] = {}
        for key_node, value_node in node.value:
            key, line = key_node.value, key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                value = self._keys.construct_object(key_node)
                if value in first:
                    self.problems.append(
                        ConfigProblem(
                            _render_loc((*path, key)),
                            f"duplicate key (first given at line {first[value]}); remove one",
                            line,
                        )
                    )
                first.setdefault(value, line)
            self.lines[(*path, key)] = line
            self.node(value_node, (*path, key))


def _render_loc(loc: Path_) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_for(loc: Path_, lines: dict[Path_, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _problems(exc: ValidationError, prefix: Path_, lines: dict[Path_, int]) -> list[ConfigProblem]:
    out = []
    for err in exc.errors():
        loc: Path_ = (*prefix, *(p for p in err["loc"] if isinstance(p, str | int)))
        # pydantic appends the union member / function name to some locations; drop non-keys
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "missing":
            message = "required key is missing"
        out.append(ConfigProblem(_render_loc(loc), message, _line_for(loc, lines)))
    return out


def collector_specs(
    site: SiteConfig,
    prefix: Path_,
    lines: dict[Path_, int],
    names: set[str],
    links: set[frozenset[str]] | None,
) -> tuple[list[CollectorSpec], list[ConfigProblem]]:
    """Validate a site's collector entries with their collectors' own models. `prefix` locates the
    list in the file (`sites[0].collectors`, or an agent config's `collectors`); `names` collects
    the names in use across sites; `links`: the configured links a link probe must follow (None:
    not checked, as in an agent, whose links are the central config's)."""
    specs: list[CollectorSpec] = []
    problems: list[ConfigProblem] = []
    for ci, entry in enumerate(site.collectors):
        at_entry: Path_ = (*prefix, ci)
        try:
            cls = registry.get(entry.type)
        except KeyError as exc:
            at_type: Path_ = (*at_entry, "type")
            problems.append(ConfigProblem(_render_loc(at_type), str(exc.args[0]), _line_for(at_type, lines)))
            continue
        try:
            options = cls.config_model.model_validate(entry.options())
        except ValidationError as exc:
            problems.extend(_problems(exc, at_entry, lines))
            continue
        except Exception as exc:  # the plugin boundary: a validator failing otherwise (re.compile's
            # OverflowError for `a{99999999999}`) is still a problem of this entry, not a crash
            message = f"invalid: {type(exc).__name__}: {exc}"
            problems.append(ConfigProblem(_render_loc(at_entry), message, _line_for(at_entry, lines)))
            continue
        spec = CollectorSpec(site, entry, options)
        if links is not None and isinstance(options, LinkProbeConfig) and frozenset(options.between) not in links:
            at: Path_ = (*at_entry, "between")
            ends = " and ".join(options.between)
            message = f"no `links:` entry between {ends}: add one, or probe a configured link"
            problems.append(ConfigProblem(_render_loc(at), message, _line_for(at, lines)))
        if spec.name in names:
            problems.append(
                ConfigProblem(
                    _render_loc((*at_entry, "name")),
                    f"collector name {spec.name!r} is used twice; set distinct `name`s",
                    _line_for(at_entry, lines),
                )
            )
        names.add(spec.name)
        if entry.enabled:
            specs.append(spec)
    return specs, problems


# ------------------------------------------------------------------ loading
def read_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[Path_, int]]:
    """The YAML mapping and the line of every key path; ConfigError for what YAML lets by."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, [ConfigProblem("", f"not valid YAML: {exc}", line)]) from None
    except RecursionError:  # PyYAML composes recursively: a few hundred nested [ or { exhaust the stack
        raise ConfigError(source, [ConfigProblem("", "not valid YAML: nested too deeply")]) from None
    except ValueError as exc:  # PyYAML's int(): an integer of more than 4,300 digits
        raise ConfigError(source, [ConfigProblem("", f"not valid YAML: {exc}")]) from None
    walk = _Walk()
    if node is not None:
        walk.node(node, ())
    if walk.problems:
        raise ConfigError(source, sorted(walk.problems, key=lambda p: p.line or 0))
    lines = walk.lines
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("", "the config must be a mapping of keys to values", 1)])
    return data, lines


def parse_config(text: str, source: str = "<config>") -> LoadedConfig:
    data, lines = read_yaml(text, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, (), lines)) from None
    problems: list[ConfigProblem] = []
    specs: list[CollectorSpec] = []
    site_names: set[str] = set()
    names: set[str] = set()
    links = {frozenset(link.between) for link in config.links}
    for si, site in enumerate(config.sites):
        if site.name in site_names:
            problems.append(
                ConfigProblem(
                    f"sites[{si}].name",
                    f"site {site.name!r} is defined twice",
                    _line_for(("sites", si, "name"), lines),
                )
            )
        site_names.add(site.name)
        prefix: Path_ = ("sites", si, "collectors")
        site_specs, site_problems = collector_specs(site, prefix, lines, names, links)
        specs.extend(site_specs)
        problems.extend(site_problems)
    for li, link in enumerate(config.links):
        for end in link.between:
            if end not in site_names:
                loc: Path_ = ("links", li, "between")
                problems.append(
                    ConfigProblem(
                        _render_loc(loc), f"no site named {end!r} (sites: {sorted(site_names)})", _line_for(loc, lines)
                    )
                )
    for spec in specs:  # a virtual node fronts a configured site, or it is a typo
        if isinstance(spec.config, KubernetesConfig):
            si = config.sites.index(spec.site)
            ci = spec.site.collectors.index(spec.entry)
            for node_name, target in spec.config.nodes.items():
                if target not in site_names:
                    loc = ("sites", si, "collectors", ci, "nodes", node_name)
                    message = f"no site named {target!r} (sites: {sorted(site_names)})"
                    problems.append(ConfigProblem(_render_loc(loc), message, _line_for(loc, lines)))
    home = config.advice.home
    if home is not None and home not in site_names:
        loc = ("advice", "home")
        problems.append(
            ConfigProblem(
                _render_loc(loc), f"no site named {home!r} (sites: {sorted(site_names)})", _line_for(loc, lines)
            )
        )
    if problems:
        raise ConfigError(source, problems)
    return LoadedConfig(config, specs, source)


def load_config(path: str | Path | None) -> LoadedConfig:
    """The config from a YAML file, or the built-in default (this machine as site `local`)."""
    if path is None:
        return parse_config("", "<built-in default>")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [ConfigProblem("", f"cannot read the config file: {exc.strerror}")]) from None
    return parse_config(text, str(p))
