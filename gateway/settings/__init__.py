"""The one place configuration comes from.

Sources, strongest first: explicit overrides (the CLI's flags), environment
variables prefixed ``SWITCHBOARD_``, an optional YAML file (``--config`` or
``SWITCHBOARD_CONFIG``), then the defaults below. Unknown keys in the YAML file
are an error, so a typo never silently falls back to a default.

Outside ``--dev`` the gateway refuses to start on settings that would make it
insecure (`Settings.insecurities`); the message names every problem at once.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from gateway.settings.audit_export import AuditExportOptions
from gateway.settings.console import ConsoleSettings
from gateway.settings.environment import retired_in, unknown_variables
from gateway.settings.fetching import FetchOptions
from gateway.settings.flows import FlowOptions
from gateway.settings.grpc import GrpcOptions
from gateway.settings.issuers import IssuerSettings
from gateway.settings.mcp_front import McpFrontOptions
from gateway.settings.mcp_sessions import McpSessionOptions
from gateway.settings.problems import settings_problems, source_problem
from gateway.settings.replicas import ReplicaOptions
from gateway.settings.upstream_calls import UpstreamCallOptions
from gateway.settings.urls import url_host, with_async_driver
from gateway.settings.workers import REPLICA_ID_MAX, SLOT_SUFFIX_MAX, WorkerOptions

logger = logging.getLogger(__name__)

_config_file: ContextVar[Path | None] = ContextVar("switchboard_config_file", default=None)

# Secrets people copy from examples; refusing them outside --dev is cheap insurance.
_KNOWN_WEAK_SECRETS = {"changeme", "change-me", "secret", "switchboard", "password", "dev"}
MIN_SECRET_LENGTH = 32


class ConfigError(ValueError):
    """The configuration cannot be used; the message says why."""


class Settings(
    FlowOptions,
    WorkerOptions,
    GrpcOptions,
    McpFrontOptions,
    McpSessionOptions,
    ReplicaOptions,
    FetchOptions,
    UpstreamCallOptions,
    AuditExportOptions,
    BaseSettings,
):
    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_",
        # SWITCHBOARD_SECRETS__OPENAI=... sets secrets["openai"].
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        # An empty variable is unset (Compose's `${VAR:-}`: deploy/compose.yaml).
        env_ignore_empty=True,
    )

    dev: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = None
    public_url: str | None = Field(
        default=None, description="Externally visible base URL; the tokens' issuer."
    )
    resource_id: str | None = Field(
        default=None, description="The gateway's own audience (RFC 8707); defaults to public_url."
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Encrypts the gateway's private keys at rest."
    )
    key_recheck_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How soon a running gateway signs with a key rotated in by another "
        "process (`switchboard keys rotate`).",
    )

    trusted_issuers: list[IssuerSettings] = Field(default_factory=list)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: float = Field(default=600, gt=0)
    jwks_min_refetch_seconds: float = Field(default=30, ge=0)

    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # Nesting of a JSON body (`gateway.http.json_body`): below protobuf's 100.
    max_json_depth: int = Field(default=64, ge=8, le=96)

    policy_file: Path | None = Field(
        default=None, description="Delegation policy (YAML); reloaded when it changes."
    )
    policy_reload_seconds: float = Field(default=1.0, gt=0)
    max_delegation_depth: int = Field(default=4, ge=1, le=16)
    delegated_token_ttl_seconds: int = Field(default=300, ge=10, le=300)
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text for a terminal; json: one object per line, with the trace id.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics without a token (default: an admin token is needed).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve metrics on this port of `host` (not the main one), without a token.",
    )
    tracing_hash_subject: bool = Field(
        default=False,
        description=(
            "Spans show the subject id as a keyed hash, not as given (tracing is"
            " turned on by the standard OTEL_* variables; docs/operations.md)."
        ),
    )
    metrics_refresh_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often breaker, approval, task and pool gauges are read.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Shared state for replicas (assertion replay cache); in-process if unset.",
    )
    audit_flush_seconds: float = Field(default=0.05, gt=0, le=10)

    mcp_stdio_commands: list[str] = Field(
        default_factory=list,
        description="Commands an admin may register as stdio MCP servers: each entry is a "
        "command line (shell-quoted) that the registered command and arguments must equal.",
    )
    mcp_auto_approve_new_tools: bool = Field(
        default=True,
        description="Approve the unflagged tools an admin's registration lists (trust on first "
        "use); flagged tools, tools found later and changed tools always wait for an admin.",
    )
    mcp_probe_seconds: float = Field(
        default=30.0, gt=0, description="How often each MCP server's tools are listed again."
    )
    mcp_connect_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    mcp_passthrough: bool = Field(
        default=True,
        description="Send tools/call to 2026-07-28 MCP servers over HTTP without the SDK's "
        "client (same wire, less CPU); off: every call goes through the SDK.",
    )
    mcp_fast_path: bool = Field(
        default=True,
        description="Serve a 2026-07-28 tools/call on /mcp with a leaner driver after the "
        "SDK's own checks (same answers, less CPU); off: every request as the SDK serves it.",
    )
    mcp_reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    mcp_reconcile_seconds: float = Field(
        default=5.0, gt=0, description="How soon a replica sees servers registered elsewhere."
    )
    mcp_required_scopes: list[str] = Field(
        default_factory=list,
        description="Scopes a token needs to use the gateway's MCP endpoint (/mcp); a token "
        "without them gets 403 insufficient_scope. Empty: any valid token.",
    )
    mcp_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values /mcp accepts (DNS rebinding protection), besides the "
        "public URL's host; 'host:*' allows any port. In dev mode 127.0.0.1 and localhost too.",
    )
    mcp_allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origin header values /mcp accepts from browsers, besides the public URL's.",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Named secrets (API keys of gateway-run agents), e.g. "
        "SWITCHBOARD_SECRETS__OPENAI; a registration names one with api_key_secret.",
    )
    gateway_run_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="How often each replica looks for tasks the gateway runs that nobody "
        "runs any more: those of replicas gone (replica_stale_seconds) and its own whose run "
        "died; each is taken over at most this long after that.",
    )

    a2a_reconcile_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="How often replicas look for A2A tasks the gateway lost contact with "
        "(a broken stream, an unreachable agent), and the first wait before asking the "
        "agent again; the wait doubles per attempt, up to 12 times this.",
    )
    a2a_reconcile_max_seconds: float = Field(
        default=600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="How long after losing contact with a running A2A task the gateway "
        "keeps asking its agent; then the task is recorded failed, with the reason.",
    )

    health_check_interval_seconds: float = Field(default=30.0, gt=0)
    health_failure_threshold: int = Field(default=3, ge=1)
    health_success_threshold: int = Field(default=2, ge=1)
    health_check_concurrency: int = Field(default=8, ge=1)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.partition("://")[0].lower()
        if scheme.split("+")[0] not in ("sqlite", "postgres", "postgresql"):
            raise ValueError(
                f"{scheme or value[:20]!r} is not a database the gateway runs on: "
                "use sqlite:///path or postgresql://user@host:port/db"
            )
        return value

    @field_validator("mcp_stdio_commands")
    @classmethod
    def _commands_parse(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not shlex.split(entry):
                raise ValueError("an empty entry would allow every command")
        return value

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, values: Any) -> Any:
        if isinstance(values, dict):
            values = dict(values)
            for said in retired_in(values):
                logger.warning("%s", said)
        return values

    @model_validator(mode="after")
    def _console_issuer_trusted(self) -> Settings:
        # The console verifies what it gets like any bearer token: an issuer
        # the API would refuse must not be able to log anyone in either.
        oidc = self.console.oidc
        if oidc is not None and oidc.issuer not in {i.issuer for i in self.trusted_issuers}:
            raise ValueError(f"console.oidc.issuer {oidc.issuer} is not one of trusted_issuers")
        return self

    @model_validator(mode="after")
    def _room_for_worker_suffix(self) -> Settings:
        replica_id = self.replica_id
        if self.workers > 1 and replica_id and len(replica_id) > REPLICA_ID_MAX - SLOT_SUFFIX_MAX:
            raise ValueError(
                f"replica_id may have at most {REPLICA_ID_MAX - SLOT_SUFFIX_MAX} characters "
                "with workers: each worker's id is it plus -<worker number>"
            )
        return self

    @property
    def stdio_command_lines(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(shlex.split(entry)) for entry in self.mcp_stdio_commands)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from every source; ``overrides`` win (None means "not given")."""
        path = config_file or _env_config_file()
        if path is not None and not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        for variable in unknown_variables(cls.model_fields, os.environ):
            logger.warning("%s is not a setting of this gateway: ignored", variable)
        token = _config_file.set(path)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(settings_problems(exc, path)) from None
        except SettingsError as exc:
            raise ConfigError(source_problem(exc)) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc})") from None
        finally:
            _config_file.reset(token)

    # Derived values -------------------------------------------------------

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def effective_resource_id(self) -> str:
        return (self.resource_id or self.effective_public_url).rstrip("/")

    @property
    def sealing_secret(self) -> str | None:
        """The secret that seals the signing keys at rest, if one is set."""
        return self.secret_key.get_secret_value() if self.secret_key else None

    @property
    def effective_replica_url(self) -> str:
        if self.replica_url:
            return self.replica_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind, not a bind here
            host = socket.gethostname()
        return f"http://{url_host(host)}:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return self.effective_public_url + "/oauth/token"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return with_async_driver(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'switchboard.db').resolve()}"

    def insecurities(self) -> list[str]:
        """Every reason these settings are unfit for production (empty in --dev)."""
        if self.dev:
            return []
        problems: list[str] = []
        secret = self.sealing_secret or ""
        if not secret:
            problems.append(
                "SWITCHBOARD_SECRET_KEY is not set: the gateway's signing keys would be "
                "stored unencrypted"
            )
        elif len(secret) < MIN_SECRET_LENGTH or secret.lower() in _KNOWN_WEAK_SECRETS:
            problems.append(
                f"SWITCHBOARD_SECRET_KEY must be at least {MIN_SECRET_LENGTH} random characters"
            )
        if not self.public_url:
            problems.append("SWITCHBOARD_PUBLIC_URL is not set: tokens need a stable issuer")
        elif not self.public_url.startswith("https://"):
            problems.append("SWITCHBOARD_PUBLIC_URL must be https:// outside --dev")
        if not self.trusted_issuers:
            problems.append(
                "no SWITCHBOARD_TRUSTED_ISSUERS: nobody could authenticate "
                "(the dev token issuer works only with --dev)"
            )
        for issuer in self.trusted_issuers:
            if not issuer.jwks_url.startswith("https://"):
                problems.append(f"issuer {issuer.issuer}: jwks_url must be https:// outside --dev")
        problems += self.console.insecurities()
        return problems


def _env_config_file() -> Path | None:
    value = os.environ.get("SWITCHBOARD_CONFIG")
    return Path(value) if value else None
