"""Warnings on a report page become plain-language notes; the technical text goes to the manifest.

Inside a report notebook, :func:`capture_warnings` (called by :func:`hipstats.report.setup_figures`)
replaces :func:`warnings.showwarning`: each distinct warning is shown once as a short note for
clinicians (no source paths, no code names, no parameter values of an optimiser) and carried,
with its category, message and source line, as an output of MIME type :data:`MIME_TYPE`, which
the runner collects into ``manifest.json`` (:func:`extract`). Library warnings that say nothing
to a reader (``RuntimeWarning``, ``FutureWarning``, deprecations) are kept for the manifest only.

Examples
--------
>>> from hipstats.errors import SingularFitWarning
>>> plain_note(SingularFitWarning, "singular fit for 'value ~ week' with random effects (1 + week | pid): theta=[0.1, 0.0]")
'The mixed model estimated part of the variation between participants (for example in their rate of change) as zero (a singular fit). The estimates below are still valid; the model is simply simpler than specified.'
>>> plain_note(UserWarning, "dropped 3 of 150 rows with a missing 'aslr_deg' or 'hip_ir_deg'")
'Dropped 3 of 150 rows with a missing ASLR angle or hip internal rotation.'
"""

from __future__ import annotations

import html
import re
import warnings
from pathlib import Path
from typing import Any

__all__ = ["MIME_TYPE", "plain_note", "plain_reason", "capture_warnings", "extract"]

MIME_TYPE = "application/vnd.hipstats.warning+json"

_CODE_NAMES = {"hip_ir_deg": "hip internal rotation", "hip_er_deg": "hip external rotation",
               "aslr_deg": "ASLR angle", "pelvic_tilt_deg": "standing pelvic tilt",
               "aslr_mens_score": "Mens ASLR score", "aslr_fms_score": "FMS ASLR score",
               "participant_id": "participant"}
_QUIET = (RuntimeWarning, FutureWarning, DeprecationWarning, PendingDeprecationWarning, ImportWarning,
          ResourceWarning)


def _category_note(category) -> str | None:
    name = getattr(category, "__name__", "")
    if name == "SingularFitWarning":
        return ("The mixed model estimated part of the variation between participants (for example in their "
                "rate of change) as zero (a singular fit). The estimates below are still valid; the model is "
                "simply simpler than specified.")
    if name == "ConvergenceWarning":
        return ("A model fit stopped before meeting its convergence criteria; treat the affected estimates "
                "with more caution than their confidence intervals suggest.")
    return None


_REWORDED = (
    (re.compile(r"DeLong variance needs at least two cases and two controls.*", re.S),
     "The confidence interval of an AUC needs at least two participants with and two without the condition; "
     "where a group has fewer, its AUC interval is not estimable."),
    (re.compile(r"\ball 1 observations are (positive|negative)"), r"the only observation is \1"),
    (re.compile(r"\bNaN\b"), "not estimable"),
)


def _list_words(m: re.Match) -> str:
    """A printed Python list of names or numbers as words (``['hiit', 'yoga']`` -> ``hiit, yoga``); else nothing."""
    items = [i.strip().strip("'\"") for i in m.group(1).split(",") if i.strip()]
    if items and all(re.fullmatch(r"[\w .\-]+", i) for i in items) and ":" not in m.group(1):
        return ", ".join(i.replace("_", " ") for i in items)
    return ""


def plain_note(category, message: str) -> str:
    """A warning in words a reader of the report understands (no paths, code names or dicts).

    >>> plain_note(UserWarning, "DeLong variance needs at least two cases and two controls; SE and CI are NaN.")[:40]
    'The confidence interval of an AUC needs '
    >>> plain_note(UserWarning, "ANCOVA needs at least 2 participants per arm; too few in ['hiit']")
    'ANCOVA needs at least 2 participants per arm; too few in hiit.'
    >>> plain_note(UserWarning, "the 'anterior' class's note gives its counts")
    "The anterior class's note gives its counts."
    """
    fixed = _category_note(category)
    if fixed:
        return fixed
    text = str(message)
    for pattern, words in _REWORDED:
        text = pattern.sub(words, text)
    text = re.sub(r"(?:[A-Za-z]:)?(?:/[\w.\-]+)+/?", "", text)  # file paths
    text = re.sub(r"\{[^{}]*\}", "", text)  # dicts
    text = re.sub(r"\[([^\[\]]*)\]", _list_words, text)  # lists: their items in words, or nothing
    for code, words in _CODE_NAMES.items():
        text = re.sub(rf"['\"]?\b{code}\b['\"]?", words, text)
    text = re.sub(r"(?<!\w)'([^'\n]*?)'(?!\w)", r"\1", text)  # quotes, never an apostrophe ("class's")
    text = re.sub(r"\s+", " ", text).strip(" :;,")
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


_REASONS = (
    (re.compile(r"mdc= is required.*?(?:no session-to-session|give no session-to-session).*?MDC for (\w+)", re.S),
     "no minimal detectable change (MDC95) is available for {0}: the cohort has no usable test-retest readings, "
     "so responders cannot be counted (give the MDC as a parameter to count them)"),
    (re.compile(r"mdc= is required.*?for (\w+)", re.S),
     "no minimal detectable change (MDC95) is available for {0}, so responders cannot be counted"),
    (re.compile(r"need at least (\d+) complete (\S+)/(\S+) pairs, got (\d+)"),
     "too few participants were measured by both ({3}; at least {0} are needed)"),
    (re.compile(r"both raters used a single and the same category.*", re.S),
     "both raters gave every participant the same score, so agreement beyond chance cannot be measured"),
)


def plain_reason(reason) -> str:
    """Why a part could not be estimated, in words for a reader: no function names, dicts or paths.

    >>> plain_reason("bland_altman: need at least 3 complete R1/R2 pairs, got 2")
    'too few participants were measured by both (2; at least 3 are needed)'
    >>> plain_reason("mdc= is required: no session-to-session reliability data for aslr_deg")
    'no minimal detectable change (MDC95) is available for ASLR angle, so responders cannot be counted'
    """
    text = str(reason).strip()
    for pattern, words in _REASONS:
        m = pattern.search(text)
        if m:
            groups = [_CODE_NAMES.get(g, g.replace("_", " ")) for g in m.groups()]
            return words.format(*groups)
    text = re.sub(r"\((?:\w+: )?[^()]*(?:\[[^\]]*\])[^()]*\)", "", text)  # a parenthesis holding a list/dict
    text = re.sub(r"^(?:[a-z_]+\.)*[a-z]+_[a-z_]+: ", "", text)  # function-name prefix ("bland_altman: ")
    out = plain_note(UserWarning, text).rstrip(".")
    return out[:1].lower() + out[1:] if out[:2] != out[:2].upper() else out


def _is_quiet(category) -> bool:
    return isinstance(category, type) and issubclass(category, _QUIET)


_STATE: dict[str, Any] = {"installed": False, "seen": set()}


def capture_warnings() -> None:
    """Show warnings as notes (once each) and keep their technical text for the manifest; no-op outside IPython."""
    try:
        from IPython import get_ipython  # noqa: PLC0415
        from IPython.display import display  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return
    if get_ipython() is None or _STATE["installed"]:
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        technical = {"category": getattr(category, "__name__", str(category)), "message": str(message),
                     "where": f"{Path(str(filename)).name}:{lineno}"}
        key = (technical["category"], technical["message"], technical["where"])
        if key in _STATE["seen"]:
            return
        _STATE["seen"].add(key)
        quiet = _is_quiet(category)
        note = "" if quiet else plain_note(category, str(message))
        technical["note"] = note
        bundle: dict[str, Any] = {MIME_TYPE: technical}
        if note and note not in _STATE["seen"]:
            _STATE["seen"].add(note)
            bundle["text/html"] = f'<div class="hipstats-note"><b>Note.</b> {html.escape(note)}</div>'
            bundle["text/plain"] = f"Note. {note}"
        display(bundle, raw=True)

    warnings.showwarning = showwarning
    warnings.simplefilter("default")  # each distinct warning once per place (Python's default)
    _STATE["installed"] = True


def extract(nb) -> list[dict[str, Any]]:
    """The warnings recorded in an executed notebook, in cell order (for the manifest)."""
    out = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data") or {}
            if MIME_TYPE in data:
                payload = data[MIME_TYPE]
                if isinstance(payload, str):
                    import json  # noqa: PLC0415

                    payload = json.loads(payload)
                out.append(dict(payload))
    return out
