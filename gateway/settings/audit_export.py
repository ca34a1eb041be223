"""The settings of the audit export to a SIEM (`gateway.audit_export`): a
part of `Settings`."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator

from registry.urls import HttpUrlText


class AuditExportOptions(BaseModel):
    audit_export_webhook_url: HttpUrlText | None = Field(
        default=None,
        description="Send every audit record, as it is written, to this URL: JSON batches "
        "signed as Standard Webhooks specifies (needs audit_export_webhook_secret).",
    )
    audit_export_webhook_secret: SecretStr | None = Field(
        default=None,
        description="The webhook signature's key (HMAC-SHA256): Standard Webhooks' "
        "whsec_<base64> form (a key of 24 bytes or more), or text of 32 characters or more.",
    )
    audit_export_otlp_endpoint: HttpUrlText | None = Field(
        default=None,
        description="Send every audit record as an OpenTelemetry log record to this OTLP/HTTP "
        "logs endpoint (a collector's http://host:4318/v1/logs).",
    )
    audit_export_otlp_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent with each OTLP request (a collector's API key, say).",
    )
    audit_export_batch_size: int = Field(default=200, ge=1, le=5000)
    audit_export_interval_seconds: float = Field(
        default=1.0, gt=0, le=300, description="How often each process looks for new records."
    )
    audit_export_max_attempts: int = Field(
        default=12,
        ge=1,
        le=1000,
        description="Tries of one batch a sink does not take before it becomes dead letters "
        "(with backoff up to audit_export_max_delay_seconds: about ten minutes by default).",
    )
    audit_export_max_delay_seconds: float = Field(default=60.0, gt=0, le=3600)
    audit_export_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _signed(self) -> Any:
        secret = self.audit_export_webhook_secret
        if self.audit_export_webhook_url is not None and not _strong(secret):
            raise ValueError(
                "audit_export_webhook_url needs audit_export_webhook_secret (whsec_<base64> "
                "of 24 bytes or more, or 32 characters or more): receivers check the signature"
            )
        return self


def _strong(secret: SecretStr | None) -> bool:
    if secret is None:
        return False
    text = secret.get_secret_value()
    if text.startswith("whsec_"):
        try:
            return len(base64.b64decode(text.removeprefix("whsec_"), validate=True)) >= 24
        except (binascii.Error, ValueError):
            return False
    return len(text) >= 32
