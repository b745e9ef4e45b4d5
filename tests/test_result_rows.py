"""The output row contract is written once (``classifier.result_rows.ROW_KINDS``); everything else agrees with it."""

import dataclasses
import typing

from classifier.prediction import Prediction
from classifier.result_rows import PREDICTION_FIELDS, ROW_FIELDS, ROW_KINDS, output_fields


def test_row_fields_are_the_contract_in_order():
    assert ROW_FIELDS == tuple(ROW_KINDS)
    assert set(PREDICTION_FIELDS) <= set(ROW_FIELDS)
    assert output_fields(("Et", "id")) == ROW_FIELDS + ("Et",)  # an official column never shadows laari's


def test_a_prediction_fills_every_prediction_field():
    names = {f.name for f in dataclasses.fields(Prediction)}
    assert set(PREDICTION_FIELDS) <= names
    # the row's other prediction values come from the Prediction too
    assert {"out_of_theme_probability", "language", "warnings"} <= names


def test_the_http_prediction_has_the_row_contract_fields_with_matching_kinds():
    from service.schemas import PredictionOut

    fields = PredictionOut.model_fields
    expected = [k for k in ROW_FIELDS if k not in ("error", "row")]
    missing = [k for k in expected if k not in fields]
    assert not missing, f"PredictionOut lacks {missing}"
    python_kind = {"text": (str,), "number": (float,), "integer": (int,), "texts": (list,), "scores": (dict,)}
    for name in expected:
        kind = ROW_KINDS[name]
        if kind == "json":
            continue  # the explanation: a nested model over HTTP, JSON text in flat formats
        annotation = fields[name].annotation
        origin = typing.get_origin(annotation) or annotation
        args = [typing.get_origin(a) or a for a in typing.get_args(annotation)] or [origin]
        if origin is typing.Literal:
            args = [type(a) for a in typing.get_args(annotation)]
        assert any(isinstance(a, type) and issubclass(a, python_kind[kind]) for a in [origin, *args]), \
            (name, annotation, kind)
