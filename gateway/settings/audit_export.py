"""The settings of the audit export to a SIEM (`gateway.audit_export`): a
part of `Settings`."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from registry.urls import HttpUrlText

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")  # RFC 9110 5.6.2


class AuditExportOptions(BaseModel):
    audit_export_webhook_url: HttpUrlText | None = Field(
        default=None,
        description="Send every audit record, as it is written, to this URL: JSON batches "
        "signed as Standard Webhooks specifies (needs audit_export_webhook_secret).",
    )
    audit_export_webhook_secret: SecretStr | None = Field(
        default=None,
        description="The webhook signature's key (HMAC-SHA256), in Standard Webhooks' "
        "whsec_<base64> form (a key of 24 bytes or more), as its libraries make and take.",
    )
    audit_export_otlp_endpoint: HttpUrlText | None = Field(
        default=None,
        description="Send every audit record as an OpenTelemetry log record to this OTLP/HTTP "
        "logs endpoint (a collector's http://host:4318/v1/logs).",
    )
    audit_export_otlp_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Headers sent with each OTLP request (a collector's API key, say); "
        "never shown.",
    )
    audit_export_batch_size: int = Field(default=200, ge=1, le=5000)
    audit_export_interval_seconds: float = Field(
        default=1.0, gt=0, le=300, description="How often each process looks for new records."
    )
    audit_export_max_attempts: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Tries of one batch a sink does not take (no answer, 5xx, 401, ...) "
        "before it becomes dead letters; unset: tried until taken, with backoff up to "
        "audit_export_max_delay_seconds.",
    )
    audit_export_max_delay_seconds: float = Field(default=60.0, gt=0, le=3600)
    audit_export_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("audit_export_otlp_headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, header in value.items():
            text = header.get_secret_value()
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if text != text.strip() or any(c in text for c in "\r\n\x00"):
                raise ValueError(f"header {name}: surrounding space or a line break in its value")
        return value

    @field_validator("audit_export_webhook_secret")
    @classmethod
    def _signed(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # Said of the secret (whose value no error shows), not of the model.
        if info.data.get("audit_export_webhook_url") is not None and not _strong(value):
            raise ValueError(
                "audit_export_webhook_url needs this: whsec_<base64> of a key of 24 bytes "
                "or more (receivers check the signature)"
            )
        return value

    @model_validator(mode="after")
    def _secret_given(self) -> Any:
        if self.audit_export_webhook_url is not None and self.audit_export_webhook_secret is None:
            raise ValueError("audit_export_webhook_url needs audit_export_webhook_secret")
        return self


def _strong(secret: SecretStr | None) -> bool:
    if secret is None or not secret.get_secret_value().startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret.get_secret_value().removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(key) >= 24
