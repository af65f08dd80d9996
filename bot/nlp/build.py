"""Builds the clinic's spaCy pipeline from the pattern files and saves it for Rasa's SpacyNLP.

No pretrained spaCy model is used: the pipeline is a blank English tokenizer, a lookup
lemmatizer whose table comes from the installed ``spacy-lookups-data`` package, and an entity
ruler loaded from every ``*.jsonl`` file of the patterns directory (default ``data/spacy``).

Usage::

    python -m bot.nlp.build --out .build/spacy/en_clinic [--patterns data/spacy]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import spacy
from spacy.language import Language
from spacy.pipeline import EntityRuler

from bot.nlp.patterns import DEFAULT_PATTERNS_DIR, load_patterns, pattern_text

PIPELINE_NAME = "en_clinic"
PIPELINE_VERSION = "1.0.0"
DESCRIPTION = (
    "Ketamine-clinic assistant pipeline: blank English tokenizer, lookup lemmatizer "
    "(spacy-lookups-data) and an entity ruler for conditions, medications, treatments and "
    "intake fields, built from the pattern files in data/spacy."
)

# When the same phrase is a pattern of two labels, the entity ruler cannot give it both: the
# domain label (condition, medication, treatment) keeps it and these labels give it up.
# normalize() still maps the phrase for every label, e.g. ("intake_field", "ketamine").
LOW_PRIORITY_LABELS = frozenset({"intake_field"})


def _label_rank(label: str) -> tuple[bool, str]:
    return (label in LOW_PRIORITY_LABELS, label)


def ruler_patterns(patterns: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Prepares the patterns for the entity ruler.

    Drops exact repeats, and settles phrases listed under more than one label in favour of the
    domain label (see ``LOW_PRIORITY_LABELS``; between two other labels, the first in
    alphabetical order).

    Args:
        patterns: Patterns as returned by :func:`bot.nlp.patterns.load_patterns`.

    Returns:
        The patterns for the ruler (only ``label``, ``pattern`` and ``id``), and one message
        per phrase left out because another label has it.

    Raises:
        ValueError: If one label maps the same phrase to two different ids.
    """
    labels_by_text: dict[str, set[str]] = {}
    id_by_label_text: dict[tuple[str, str], str] = {}
    for entry in patterns:
        text = pattern_text(entry["pattern"])
        if text is None:
            continue
        labels_by_text.setdefault(text, set()).add(entry["label"])
        known = id_by_label_text.setdefault((entry["label"], text), entry["id"])
        if known != entry["id"]:
            raise ValueError(
                f"label {entry['label']!r}: phrase {text!r} maps to both {known!r} and "
                f"{entry['id']!r}"
            )

    kept: list[dict[str, Any]] = []
    dropped: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for entry in patterns:
        key = (entry["label"], json.dumps(entry["pattern"], sort_keys=True), entry["id"])
        if key in seen:
            continue
        seen.add(key)
        text = pattern_text(entry["pattern"])
        if text is not None:
            winner = min(labels_by_text[text], key=_label_rank)
            if winner != entry["label"]:
                dropped.append(f"{entry['label']} {text!r} (kept as {winner})")
                continue
        kept.append({"label": entry["label"], "pattern": entry["pattern"], "id": entry["id"]})
    return kept, dropped


def build_pipeline(patterns_dir: Path) -> Language:
    """Builds the pipeline in memory.

    Args:
        patterns_dir: Directory of the ``*.jsonl`` pattern files.

    Returns:
        A blank English pipeline with a lookup ``lemmatizer`` and an ``entity_ruler``.

    Raises:
        FileNotFoundError: If the directory holds no pattern file.
        ValueError: If a pattern line is invalid or a label maps one phrase to two ids.
    """
    patterns, _ = ruler_patterns(load_patterns(patterns_dir))

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    ruler = cast(
        EntityRuler,
        nlp.add_pipe(
            "entity_ruler",
            config={"phrase_matcher_attr": "LOWER", "overwrite_ents": False},
        ),
    )
    # Loads the lemma_lookup table from spacy-lookups-data; it also empties the ruler, so
    # the patterns are added afterwards (their texts run through the lemmatizer).
    nlp.initialize()
    ruler.add_patterns(patterns)

    nlp.meta.update(
        {
            "name": PIPELINE_NAME,
            "version": PIPELINE_VERSION,
            "description": DESCRIPTION,
            "sources": [
                {
                    "name": "spacy-lookups-data",
                    "version": metadata.version("spacy-lookups-data"),
                    "url": "https://github.com/explosion/spacy-lookups-data",
                }
            ],
        }
    )
    return nlp


def verify_pipeline(path: Path) -> dict[str, Any]:
    """Loads a saved pipeline the way Rasa's SpacyNLP does, and checks it.

    Args:
        path: Directory of the saved pipeline.

    Returns:
        The pipeline's meta as reported by ``spacy.info``.

    Raises:
        RuntimeError: If the pipeline does not load, or is not the expected one.
    """
    try:
        nlp = spacy.load(path, disable=["parser"])
        info = spacy.info(str(path))
    except (OSError, ValueError, SystemExit) as error:  # spacy.info exits if meta is missing
        raise RuntimeError(f"saved pipeline at {path} does not load: {error}") from error
    if not isinstance(info, dict) or info.get("name") != PIPELINE_NAME:
        raise RuntimeError(f"spacy.info({str(path)!r}) did not describe {PIPELINE_NAME}")
    if not spacy.util.is_compatible_version(spacy.about.__version__, info["spacy_version"]):
        raise RuntimeError(f"pipeline needs spaCy {info['spacy_version']}")
    if nlp.pipe_names != ["lemmatizer", "entity_ruler"]:
        raise RuntimeError(f"unexpected components {nlp.pipe_names}")
    if not len(cast(EntityRuler, nlp.get_pipe("entity_ruler"))):
        raise RuntimeError("the saved entity ruler has no patterns")
    return info


def _is_pipeline_dir(path: Path) -> bool:
    return (path / "meta.json").is_file() and (path / "config.cfg").is_file()


def save_pipeline(nlp: Language, out: Path) -> Path:
    """Saves a pipeline so that ``out`` is never left half-written.

    The pipeline is written to a temporary directory next to ``out``, loaded back and checked,
    and only then renamed into place, replacing a previous build.

    Args:
        nlp: The pipeline to save.
        out: Target directory. If it exists it must be an earlier saved pipeline (or empty).

    Returns:
        The target directory.

    Raises:
        FileExistsError: If ``out`` exists and is not a saved pipeline.
        RuntimeError: If the saved copy does not load.
    """
    out = Path(out)
    if out.exists() and not (out.is_dir() and (_is_pipeline_dir(out) or not any(out.iterdir()))):
        raise FileExistsError(f"{out} exists and is not a saved spaCy pipeline; not replacing it")
    out.parent.mkdir(parents=True, exist_ok=True)

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    previous: Path | None = None
    try:
        staging.chmod(0o755)  # mkdtemp makes it private to this user
        nlp.to_disk(staging)
        verify_pipeline(staging)
        if out.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            old = previous / out.name
            out.replace(old)
            try:
                staging.replace(out)
            except OSError:
                old.replace(out)
                raise
        else:
            staging.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: builds, saves and verifies the pipeline.

    Args:
        argv: Command line arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 on bad pattern files or a failed save.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bot.nlp.build",
        description="Build the clinic's spaCy pipeline from the entity pattern files.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to save the pipeline")
    parser.add_argument(
        "--patterns",
        type=Path,
        default=DEFAULT_PATTERNS_DIR,
        help="directory of *.jsonl pattern files (default: data/spacy of the project)",
    )
    args = parser.parse_args(argv)

    try:
        _, dropped = ruler_patterns(load_patterns(args.patterns))
        nlp = build_pipeline(args.patterns)
        out = save_pipeline(nlp, args.out)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    ruler = cast(EntityRuler, nlp.get_pipe("entity_ruler"))
    print(
        f"Saved {PIPELINE_NAME} {PIPELINE_VERSION} to {out}: {len(ruler)} patterns, "
        f"labels {', '.join(ruler.labels)}."
    )
    for message in dropped:
        print(f"  left to another label: {message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
