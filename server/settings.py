"""How ``sidra serve`` runs: one settings model from a TOML file, ``SIDRA_*`` and options.

Sources, strongest first: command-line options (keyword arguments), environment
variables (``SIDRA_LISTEN``; nested keys with a double underscore:
``SIDRA_TLS__CERT``), the TOML file named by ``--config`` (or ``SIDRA_CONFIG``),
then the defaults below. :func:`load_settings` turns every refused value into a
:class:`ConfigError` whose lines each name the key, what was given and what is
allowed (``tls.cert: file not found '/x.pem'``).

Two rules hold across keys: a listen address reachable from the network needs
TLS and ``[auth]`` unless ``allow_insecure = true``; without ``[auth]`` the
service is open to whoever can connect, which by the first rule is loopback only.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from sidra.drivers.errors import refused_setting
from sidra.server.address import is_loopback, split_address
from sidra.server.relative_paths import path_text
from sidra.server.security.certificates import (
    client_ca_problem,
    expiry_warning,
    server_certificate_problem,
)
from sidra.server.security.tls import key_pair_problem, pem_problem
from sidra.server.security.tokens import (
    file_mode,
    read_tokens,
    tokens_file_problem,
    tokens_file_warning,
)
from sidra.server.state.paths import default_store_path
from sidra.server.stopping import JOB_STOP_WAIT_S

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "AuthSettings",
    "ConfigError",
    "LimitsSettings",
    "LoggingSettings",
    "MetricsSettings",
    "ServedFiles",
    "ServerSettings",
    "StateSettings",
    "TlsSettings",
    "default_state_path",
    "load_settings",
    "served_files",
]

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""8 MiB: twice the largest batch ``[limits] max_batch`` allows by default (4096
float32 vectors on a 256-row tile, 4 MiB each way). gRPC refuses a larger message
before the service sees it, so a flood of huge messages costs the service little;
a message it accepts is copied and parsed under the interpreter lock, which every
other call then waits for. Raise it together with ``max_batch``."""

NONE = type(None)

SECTION = ConfigDict(frozen=True, extra="forbid")


class ConfigError(ValueError):
    """Settings that cannot run: one line per problem, each starting with its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _listen_address(value: str) -> str:
    split_address(value)  # ValueError saying what a listen address looks like
    return value


def _pem(path: Path, kind: str) -> Path:
    problem = pem_problem(path, kind)
    if problem:
        raise ValueError(problem)
    return path


def exposure(path: Path, what: str) -> str | None:
    """A warning when the secret file ``path`` is readable beyond its owner (its group or
    everyone); None when it is not (or cannot be looked at)."""
    mode = file_mode(path)
    if mode is None or not mode & 0o077:
        return None
    whom = "everyone" if mode & 0o004 else "its group"
    return (
        f"{what}: {path} is readable by {whom} (mode {mode:o}): whoever reads it can pose "
        f"as this server; chmod 600 {path}"
    )


class TlsSettings(BaseModel):
    """``[tls]``: the server's certificate, and the CA of client certificates for mutual TLS."""

    model_config = SECTION

    cert: Path
    """PEM file: the certificate chain the server presents, its own certificate first;
    refused expired, not yet valid or made for clients only (extendedKeyUsage without
    serverAuth), warned of within 30 days of its expiry."""
    key: Path
    """PEM file: the private key of ``cert`` (readable by the service's user only)."""
    client_ca: Path | None = None
    """PEM file: CA certificate(s) that sign client certificates (CA certificates only, as
    basicConstraints says). Set: every client must
    present one (mutual TLS), others fail the handshake. Unset: any client may connect."""

    @field_validator("cert")
    @classmethod
    def _server_certificate(cls, path: Path) -> Path:
        problem = server_certificate_problem(_pem(path, "CERTIFICATE"), datetime.now(UTC))
        if problem:
            raise ValueError(problem)
        return path

    @field_validator("client_ca")
    @classmethod
    def _client_ca(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        problem = client_ca_problem(_pem(path, "CERTIFICATE"))
        if problem:
            raise ValueError(problem)
        return path

    @field_validator("key")
    @classmethod
    def _key(cls, path: Path) -> Path:
        return _pem(path, "PRIVATE KEY")

    @model_validator(mode="after")
    def _key_fits_cert(self) -> TlsSettings:
        problem = key_pair_problem(self.cert, self.key)
        if problem:
            raise ValueError(f"tls.key: {problem}")
        return self

    def warnings(self, now: datetime) -> list[str]:
        """What a start with these files warns of, and ``--check`` with it: a key others
        can read, a certificate that expires soon (each line starts with its key)."""
        found = [exposure(self.key, "tls.key")]
        expiring = expiry_warning(self.cert, now)
        found.append(None if expiring is None else f"tls.cert: {expiring}")
        return [warning for warning in found if warning]


class AuthSettings(BaseModel):
    """``[auth]``: bearer tokens; present, every call needs a token of a sufficient role."""

    model_config = SECTION

    tokens_file: Path
    """TOML file of principals, roles and token digests (``sidra token add`` writes it).
    Re-read when it changes, so adding or removing a principal needs no restart."""

    @field_validator("tokens_file")
    @classmethod
    def _readable_tokens(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"file not found {path_text(path)} (sidra token add creates it)")
        try:
            principals = read_tokens(path)
        except OSError as exc:
            raise ValueError(f"cannot read {str(path)!r} ({exc.strerror})") from None
        if not principals:
            raise ValueError(f"{str(path)!r} holds no principals (sidra token add adds one)")
        writable = tokens_file_problem(path)
        if writable:
            raise ValueError(writable)
        return path

    def warnings(self) -> list[str]:
        """What a start with this tokens file warns of, and ``--check`` with it: a file
        everyone may read (each line starts with its key)."""
        readable = tokens_file_warning(self.tokens_file)
        return [] if readable is None else [f"auth.tokens_file: {readable}"]


class LimitsSettings(BaseModel):
    """``[limits]``: what one principal may ask of the board at a time; every principal
    has the same limits, counted for it alone. Enforced by sidra.server.limits: a call
    over one is refused with RESOURCE_EXHAUSTED before it reaches the board."""

    model_config = SECTION

    max_message_mb: int | None = Field(None, ge=1, le=2047)
    """Largest request one principal may send, MiB; unset: the server-wide ``max_message_mb``."""
    max_batch: int = Field(4096, ge=1, le=1_048_576)
    """Most input vectors in one MVM or TransposeMVM request (points × vectors in a
    PerturbedMVM), vectors."""
    max_in_flight: int = Field(4, ge=1, le=1024)
    """Most requests one principal may have running or queued at once, requests."""
    max_jobs: int = Field(2, ge=1, le=64)
    """Most training jobs one principal may have running in the server at once, jobs."""
    max_queued_jobs: int = Field(16, ge=1, le=1024)
    """Most training jobs one principal may have waiting in the server's queue at once
    (SubmitJob queue), jobs."""
    max_dataset_mb: int = Field(256, ge=1, le=65_536)
    """Most data set files one principal may keep in the server for its jobs, MiB in all
    (UploadDataset; jobs.proto "Stored data set files"); also the largest such file."""
    max_job_hours: float | None = Field(None, gt=0, le=8760)
    """Longest a training job may run, hours: past it the job is stopped at its next
    step, epoch or run boundary, as a CancelJob stops it, keeping its record and
    checkpoint. Unset: no limit."""
    max_streams: int | None = Field(None, ge=1, le=255)
    """Most long-lived streams (WatchJob, MVMStream, ProgramChunked,
    ReadConductanceChunked, UploadDataset) the whole server runs at once, over every principal,
    streams; each holds a worker thread while open. Unset: half of ``workers``
    (at least 1); below ``workers`` in any case, so unary calls always find one."""


class LeaseSettings(BaseModel):
    """``[leases]``: sessions and tile leases (session.proto)."""

    model_config = SECTION

    default_ttl_s: float = Field(30.0, ge=1.0, le=86_400.0)
    """Session time to live when a client asks for 0, s."""
    max_ttl_s: float = Field(3600.0, ge=1.0, le=86_400.0)
    """Longest session time to live a client may ask for, s."""
    reads: Literal["shared", "exclusive"] = "shared"
    """Reads of a tile leased by another session: ``shared`` serves them (the reader
    sees the tile as its holder left it), ``exclusive`` refuses them like writes."""
    max_sessions_per_principal: int = Field(8, ge=1, le=1024)
    """Open sessions one principal may have at once, sessions."""

    @model_validator(mode="after")
    def _default_within_max(self) -> LeaseSettings:
        if self.default_ttl_s > self.max_ttl_s:
            raise ValueError(
                f"default_ttl_s: {self.default_ttl_s:g} is above max_ttl_s = {self.max_ttl_s:g}"
            )
        return self


class SharedMemorySettings(BaseModel):
    """``[shared_memory]``: tensors in POSIX shared memory for clients on this host
    (session.proto, "Shared memory"; docs/operations.md, "Shared memory")."""

    model_config = SECTION

    enabled: bool = False
    """Offer shared-memory registrations to callers on this host (unix: or loopback
    peers); off by default: a same-host client that truncates a registered object
    while a call uses it can crash the server."""
    max_regions_per_session: int = Field(16, ge=1, le=1024)
    """Registrations one session may hold at once."""
    max_region_mb: int = Field(1024, ge=1, le=65_536)
    """Largest registration, MiB."""


def default_state_path() -> Path:
    """``user_data_dir("sidra-hil")/state.sqlite3``: per user, surviving reboots
    (``~/.local/share/sidra-hil/state.sqlite3`` on Linux); the store defines it."""
    return default_store_path()


class StateSettings(BaseModel):
    """``[state]``: where the service keeps what it knows about the board between runs."""

    model_config = SECTION

    path: Path = Field(default_factory=default_state_path)
    """SQLite file of the board's durable state; default: :func:`default_state_path`.
    ``~`` is the user's home; a relative path is taken from the folder the command
    starts in (a service's configuration gives an absolute one)."""

    @field_validator("path")
    @classmethod
    def _home_expanded(cls, value: Path) -> Path:
        return value.expanduser()  # "~/x" made a folder named "~" where the command ran

    job_checkpoint_every_s: float = Field(60.0, ge=1.0, le=86_400.0)
    """How often a running training job keeps its checkpoint in the store, s (at its next
    step or epoch boundary after that long): what a server that dies mid-job leaves for a
    new job to go on from (jobs.proto)."""
    job_retention_days: float | None = Field(None, gt=0.0, le=36_500.0)
    """How long an ended job (its row, events and record files) is kept, days; older ones
    are deleted when the server starts and, at most once an hour, when a job ends or jobs
    are listed. Unset: kept until deleted (DeleteJob, ``sidra jobs delete``)."""
    dataset_retention_days: float | None = Field(None, gt=0.0, le=36_500.0)
    """How long a data set file kept for jobs (UploadDataset) stays once it was last
    uploaded or named by a job, days; older ones are deleted when the server starts and,
    at most once an hour, when files are listed or uploaded (jobs queued on one keep it).
    Unset: kept until deleted (DeleteDataset, ``sidra jobs datasets delete``)."""


class MetricsSettings(BaseModel):
    """``[metrics]``: the Prometheus endpoint."""

    model_config = SECTION

    listen: str | None = None
    """host:port of the metrics endpoint, apart from the gRPC port; unset: no endpoint."""
    deployment_check_every_s: float = Field(3600.0, ge=0.0, le=604_800.0)
    """A scrape has each intact deployment whose latest check is older than this checked
    (CheckDeployment as the server: a ReadConductance of its regions) on a thread of its
    own, so that ``sidra_deployment_correlation`` stays fresh without a cron job and no
    scrape waits on the board, s; 0: only checks asked for (``sidra model check``)."""
    deployment_check_read_repeats: int = Field(1, ge=1, le=100)
    """How many times those checks read each cell, their figures of the mean (read noise
    shrinks as one over the square root of it; each read is a ReadConductance of the
    deployment's regions), reads."""

    @field_validator("listen")
    @classmethod
    def _listen_is_an_address(cls, value: str | None) -> str | None:
        return None if value is None else _listen_address(value)


class LoggingSettings(BaseModel):
    """``[logging]``: how the service's log lines look (sidra.server.observability.logs)."""

    model_config = SECTION

    format: Literal["text", "json"] = "text"
    """``text``: ``time LEVEL logger: message`` lines; ``json``: one JSON object per line."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged. At ``info`` each RPC logs one line, except routine calls
    answered OK (MVM, TransposeMVM, Perturb, health checks), which log at ``debug``."""


class _OptionsEnvironmentFile(BaseSettings):
    """Settings read from options, then ``SIDRA_*``, then the TOML file they name."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Options, then SIDRA_*, then the file: the file is read last so the
        # options and the environment can name it (--config, SIDRA_CONFIG).
        return init_settings, env_settings, TomlFileSource(settings_cls)


class ServerSettings(_OptionsEnvironmentFile):
    """How ``sidra serve`` runs; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix="SIDRA_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    config: Path | None = None
    """The TOML file the other settings were read from (``--config``, ``SIDRA_CONFIG``)."""
    board: str = "emu://"
    """Board URL: ``emu://?preset=...``, ``serial:///dev/ttyUSB0?baud=921600``,
    ``socket://host:port`` (a board behind the wire protocol), ``pcie://0000:01:00.0`` or
    ``pcie+file:///path`` (a PCIe board's BAR0, or a virtual one behind a mapped file)."""
    listen: str = "127.0.0.1:50051"
    """host:port to listen on; port 0 picks a free one. Beyond loopback it needs
    ``[tls]`` and ``[auth]``, or ``allow_insecure = true``."""
    max_message_mb: int = Field(DEFAULT_MAX_MESSAGE_BYTES // 2**20, ge=1, le=2047)
    """Largest gRPC message sent or received, MiB."""
    workers: int = Field(8, ge=1, le=256)
    """Worker threads of the gRPC server (calls on one board are serialised anyway)."""
    reflection: bool = True
    """Register gRPC server reflection, v1 and v1alpha, so grpcurl-style tools discover the
    API (with ``[auth]``, reflection needs a viewer token)."""
    job_stop_wait_s: float = Field(JOB_STOP_WAIT_S, ge=0.0, le=3600.0)
    """How long ``sidra serve``, told to stop (SIGINT, SIGTERM), waits for running
    training jobs to reach their next step or epoch and keep their record and
    checkpoint, s; a job still running then is stopped at its next board call. Keep it
    below the service manager's stop timeout (systemd's default is 90 s)."""
    allow_insecure: bool = False
    """Serve a non-loopback address without TLS or without ``[auth]`` anyway (logged as a
    warning at start): only on a network where everyone who can connect is trusted."""
    tls: TlsSettings | None = None
    """``[tls]``; unset: plaintext (loopback only unless ``allow_insecure``)."""
    auth: AuthSettings | None = None
    """``[auth]``; unset: every caller may do everything (loopback only unless
    ``allow_insecure``)."""
    limits: LimitsSettings = LimitsSettings()
    """``[limits]``: per-principal limits."""
    leases: LeaseSettings = LeaseSettings()
    """``[leases]``: sessions and tile leases."""
    shared_memory: SharedMemorySettings = SharedMemorySettings()
    """``[shared_memory]``: tensors in shared memory for clients on this host (off)."""
    state: StateSettings = Field(default_factory=StateSettings)
    """``[state]``: durable board state."""
    metrics: MetricsSettings = MetricsSettings()
    """``[metrics]``: the metrics endpoint."""
    logging: LoggingSettings = LoggingSettings()
    """``[logging]``: log format and level."""

    @field_validator("listen")
    @classmethod
    def _listen_is_an_address(cls, value: str) -> str:
        return _listen_address(value)

    @model_validator(mode="after")
    def _network_needs_protection(self) -> ServerSettings:
        if is_loopback(self.listen) or self.allow_insecure:
            return self
        missing = [name for name, part in (("[tls]", self.tls), ("[auth]", self.auth)) if not part]
        if missing:
            raise ValueError(
                f"listen: {self.listen!r} is reachable from the network, which needs "
                f"{' and '.join(missing)} (or allow_insecure = true on a trusted network); "
                "loopback addresses (127.0.0.1, [::1], localhost) need neither"
            )
        return self

    @model_validator(mode="after")
    def _metrics_port_of_its_own(self) -> ServerSettings:
        if self.metrics.listen is None:
            return self
        port = split_address(self.metrics.listen)[1]
        if port != 0 and port == split_address(self.listen)[1]:
            raise ValueError(
                f"metrics.listen: {self.metrics.listen!r} takes port {port}, the gRPC port "
                f"(listen = {self.listen!r}); the metrics endpoint needs a port of its own"
            )
        return self

    @model_validator(mode="after")
    def _limits_fit_the_server(self) -> ServerSettings:
        per_principal = self.limits.max_message_mb
        if per_principal is not None and per_principal > self.max_message_mb:
            raise ValueError(
                f"limits.max_message_mb: {per_principal} is above max_message_mb = "
                f"{self.max_message_mb}, the largest message the server accepts at all"
            )
        streams = self.limits.max_streams
        if streams is not None and streams >= self.workers:
            raise ValueError(
                f"limits.max_streams: {streams} is not below workers = {self.workers}; every "
                "open stream holds a worker thread, and unary calls need at least one left"
            )
        return self


class TomlFileSource(PydanticBaseSettingsSource):
    """The TOML file that a stronger source (options, environment) names as ``config``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole file at once

    def __call__(self) -> dict[str, Any]:
        path = self.current_state.get("config")
        if path is None:
            return {}
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config: file not found {path_text(Path(path))}"]) from None
        except OSError as exc:
            raise ConfigError([f"config: cannot read {str(path)!r} ({exc.strerror})"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"config: {str(path)!r} is not valid TOML ({exc})"]) from None
        if "config" in values:
            raise ConfigError(["config: name the file with --config or SIDRA_CONFIG, not in it"])
        return values


def load_settings(config: Path | None = None, **options: Any) -> ServerSettings:
    """The settings from ``options`` (None values left out), ``SIDRA_*`` and ``config``.

    Raises :class:`ConfigError` listing every problem, each naming its key.
    """
    given = {name: value for name, value in options.items() if value is not None}
    if config is not None:
        given["config"] = config
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        raise ConfigError(
            [refused_setting(e, _allowed_keys) + _from_environment(e["loc"]) for e in exc.errors()]
        ) from None


def _from_environment(location: tuple[Any, ...]) -> str:
    """Where a refused value came from when a SIDRA_* variable gave it (it overrides the
    file: an admin looking for ``max_batch = 0`` in sidra.toml found 64 there)."""
    given = _variable_set("SIDRA_" + "__".join(str(part) for part in location))
    return "" if given is None else f" (from the environment variable {given})"


def _variable_set(name: str) -> str | None:
    """The environment variable ``name`` as it is spelt where set (the settings read
    ``sidra_state__path`` as ``SIDRA_STATE__PATH``); None when unset."""
    return next((key for key in os.environ if key.upper() == name.upper()), None)


CLIENT_VARIABLES = frozenset({"SIDRA_TOKEN", "SIDRA_SERVER", "SIDRA_CACHE_DIR", "SIDRA_HW_URL"})
"""SIDRA_* variables of the client, the command line and the conformance suite, not of
``sidra serve``."""


def unread_variables(environ: dict[str, str] | None = None) -> list[str]:
    """A warning for each SIDRA_* variable that names no setting of ``sidra serve`` (a
    typo: ``SIDRA_LIMIT__MAX_BATCH``, ``SIDRA_WROKERS``), which the settings would
    otherwise pass over in silence; the closest setting's variable suggested."""
    sections = [name.upper() for name in ServerSettings.model_fields]
    warnings = []
    for key in sorted(os.environ if environ is None else environ):
        upper = key.upper()
        if not upper.startswith("SIDRA_") or upper in CLIENT_VARIABLES:
            continue
        head, _, rest = upper.removeprefix("SIDRA_").partition("__")
        if head in sections:
            continue
        close = difflib.get_close_matches(head, sections, n=1)
        hint = f" (SIDRA_{close[0]}{'__' + rest if rest else ''}?)" if close else ""
        warnings.append(
            f"{key} is set and names no setting of sidra serve{hint}; the settings: "
            + ", ".join(f"SIDRA_{name}" for name in sections)
        )
    return warnings


def _allowed_keys(location: tuple[Any, ...]) -> str:
    model: Any = ServerSettings
    for part in location[:-1]:
        annotation = model.model_fields[str(part)].annotation
        # A section is ``Section`` or ``Section | None``: the model is the non-None part.
        model = next(a for a in getattr(annotation, "__args__", (annotation,)) if a is not NONE)
    return ", ".join(name for name in model.model_fields if name != "config")


class _StateFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    path: Path = Field(default_factory=default_state_path)


class _TokensFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tokens_file: Path | None = None


class ServedFiles(_OptionsEnvironmentFile):
    """The files a ``sidra serve`` started here would use, found as it finds them:
    ``SIDRA_STATE__PATH`` / ``SIDRA_AUTH__TOKENS_FILE``, then the ``--config`` (or
    ``SIDRA_CONFIG``) file, then the defaults. Only these keys are read: the commands that
    work on the files themselves (``sidra state``, ``sidra token``) run where a server's
    other settings (its TLS files, a tokens file not yet written) need not hold."""

    model_config = SettingsConfigDict(
        env_prefix="SIDRA_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    config: Path | None = None
    """The TOML file read, if any."""
    state: _StateFile = Field(default_factory=_StateFile)
    """``[state]``: only ``path``."""
    auth: _TokensFile | None = None
    """``[auth]``: only ``tokens_file``."""

    @property
    def store_path(self) -> Path:
        """The state store's file (``[state] path``)."""
        return self.state.path

    @property
    def tokens_file(self) -> Path | None:
        """The tokens file (``[auth] tokens_file``); None when no setting names one."""
        return None if self.auth is None else self.auth.tokens_file

    @property
    def store_path_setting(self) -> str | None:
        """The setting that named :attr:`store_path`, as an error about the store names it:
        the environment variable (``SIDRA_STATE__PATH``, or ``SIDRA_STATE`` holding JSON
        with a ``path``), else ``[state] path of FILE``; None for the default. The
        variable wins over the file, as it does for ``sidra serve``."""
        if "path" not in self.state.model_fields_set:
            return None
        variable = _variable_set("SIDRA_STATE__PATH")
        if variable is not None:
            return variable
        section = _variable_set("SIDRA_STATE")
        if section is not None and "path" in _json_keys(os.environ[section]):
            return section
        return f"[state] path of {self.config}"


def _json_keys(text: str) -> set[str]:
    """The keys of the JSON object ``text`` (none when it is not one)."""
    try:
        value = json.loads(text)
    except ValueError:
        return set()
    return set(value) if isinstance(value, dict) else set()


def served_files(config: Path | None = None) -> ServedFiles:
    """The :class:`ServedFiles` of ``config`` (None: ``SIDRA_CONFIG``, if set).

    Raises :class:`ConfigError` naming the key, as :func:`load_settings` does, when the
    file cannot be read or a path setting is not a path."""
    given: dict[str, Any] = {} if config is None else {"config": config}
    try:
        return ServedFiles(**given)
    except ValidationError as exc:
        raise ConfigError([refused_setting(e) for e in exc.errors()]) from None
