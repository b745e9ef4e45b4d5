"""The one result type every caller gets: CLI, HTTP routes, batch jobs and the web page."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ProjectInput:
    description: str
    title: str = ""
    id: str | None = None


@dataclass
class Prediction:
    id: str | None
    laari: str  # a laari id or the out-of-theme verdict
    laari_scores: dict[str, float]  # the five laarit, renormalised to sum to 1
    out_of_theme_probability: float
    fit: float  # 0..1: probability that the project belongs to the theme at all
    fit_verdict: str  # typical / borderline / outlier
    tags: list[str]
    tag_scores: dict[str, float]
    explanation: dict
    model_version: str
    language: str = "fi"
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)
