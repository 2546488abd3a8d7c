"""What the service holds while it runs, shared by the API, CDS Hooks and dashboard routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ehrpredict.errors import ConfigError
from ehrpredict.serve.audit import AuditLog
from ehrpredict.serve.auth import KeyStore, SessionSigner
from ehrpredict.serve.middleware import Metrics, RateLimiter
from ehrpredict.serve.scoring import ServedModel

MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    max_body_bytes: int = MAX_BODY_BYTES
    rate_limit: float = 50.0  # requests per second per key, on average (0: no limit)
    burst: float = 100.0
    secure_cookies: bool = False  # set the cookie's Secure flag (behind HTTPS)
    public_url: str | None = None  # the dashboard's address in CDS cards; default: the request's own

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024:
            raise ConfigError(f"expected a body limit of at least 1024 bytes, got {self.max_body_bytes}")
        if self.rate_limit < 0 or self.burst < 1:
            raise ConfigError(f"expected rate_limit >= 0 and burst >= 1, got {self.rate_limit} and {self.burst}")


@dataclass
class ServeContext:
    models: dict[str, ServedModel]
    keys: KeyStore
    audit: AuditLog
    signer: SessionSigner
    settings: ServeSettings = field(default_factory=ServeSettings)
    dataset: Path | None = None
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.settings.rate_limit, self.settings.burst)

    def model(self, name: str) -> ServedModel | None:
        return self.models.get(name)


def load_models(paths: list[Path]) -> dict[str, ServedModel]:
    """Every bundle, loaded and checked before the server accepts a request: a broken bundle is a
    clear error at start-up, not a 500 later. Two bundles with one name are refused."""
    models: dict[str, ServedModel] = {}
    for path in paths:
        model = ServedModel.load(path)
        if model.name in models:
            raise ConfigError(f"expected distinct model names, got {model.name!r} twice ({path}); fit one with --name")
        models[model.name] = model
    if not models:
        raise ConfigError("expected at least one bundle to serve, got none")
    return models
