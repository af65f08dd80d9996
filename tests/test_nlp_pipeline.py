"""Tests of the project's spaCy pipeline (bot.nlp) and of its pattern files in data/spacy."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.pipeline import EntityRuler, Lemmatizer
from spacy.tokens import Doc, Span

from bot.nlp import build
from bot.nlp.patterns import (
    DEFAULT_PATTERNS_DIR,
    clear_cache,
    ids,
    load_patterns,
    normalize,
    pattern_text,
)

PATTERNS_DIR = Path(__file__).resolve().parents[1] / "data" / "spacy"
FILE_LABELS = {
    "conditions.jsonl": "condition",
    "medications.jsonl": "medication",
    "treatments.jsonl": "treatment",
    "intake_fields.jsonl": "intake_field",
}
ID_RE = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds the real pipeline once, through the command line entry point."""
    out = tmp_path_factory.mktemp("spacy") / "en_clinic"
    assert build.main(["--out", str(out), "--patterns", str(PATTERNS_DIR)]) == 0
    return out


@pytest.fixture(scope="module")
def nlp(pipeline_dir: Path) -> Language:
    return spacy.load(pipeline_dir)


def _entities(doc: Doc) -> list[tuple[str, str, str]]:
    return [(ent.text, ent.label_, ent.ent_id_) for ent in doc.ents]


def _check_entity(nlp: Language, sentence: str, label: str, text: str, expected_id: str) -> None:
    doc = nlp(sentence)
    found = [ent for ent in doc.ents if ent.text == text]
    assert found, f"{text!r} is not an entity of {sentence!r}: {_entities(doc)}"
    ent = found[0]
    assert ent.label_ == label
    assert ent.ent_id_ == expected_id
    assert normalize(label, ent.text) == expected_id


# --- the saved pipeline ------------------------------------------------------------------------


def test_saved_pipeline_loads_like_rasa_spacynlp(pipeline_dir: Path) -> None:
    # Rasa's SpacyNLP.load_model calls exactly these two.
    loaded = spacy.load(str(pipeline_dir), disable=["parser"])
    info = spacy.info(str(pipeline_dir))

    assert isinstance(info, dict)
    assert info["name"] == "en_clinic"
    assert info["version"] == "1.0.0"
    assert info["description"]
    assert spacy.util.is_compatible_version(spacy.about.__version__, info["spacy_version"])
    assert loaded.lang == "en"
    assert loaded.path is not None  # Rasa rejects pipelines that were not loaded from disk
    assert loaded.pipe_names == ["lemmatizer", "entity_ruler"]
    lemmatizer = loaded.get_pipe("lemmatizer")
    assert isinstance(lemmatizer, Lemmatizer)
    assert lemmatizer.mode == "lookup"
    assert lemmatizer.lookups.has_table("lemma_lookup")
    ruler = loaded.get_pipe("entity_ruler")
    assert isinstance(ruler, EntityRuler)
    assert ruler.phrase_matcher_attr == "LOWER"
    assert ruler.overwrite is False
    assert set(ruler.labels) == set(FILE_LABELS.values())


def test_saved_pipeline_has_every_pattern_except_shared_phrases(nlp: Language) -> None:
    patterns = load_patterns(PATTERNS_DIR)
    ruler_patterns, dropped = build.ruler_patterns(patterns)
    # Only "ketamine" and "antidepressants" are also intake-field phrases.
    assert sorted(dropped) == [
        "intake_field 'antidepressants' (kept as treatment)",
        "intake_field 'ketamine' (kept as treatment)",
    ]
    ruler = nlp.get_pipe("entity_ruler")
    assert isinstance(ruler, EntityRuler)
    assert len(ruler) == len(ruler_patterns) == len(patterns) - 2


def test_build_leaves_no_temporary_directories(pipeline_dir: Path) -> None:
    assert [path.name for path in pipeline_dir.parent.iterdir()] == ["en_clinic"]


# --- entities in realistic sentences -------------------------------------------------------------

CONDITIONS = [
    (
        "I've had treatment-resistant depression for ten years.",
        "treatment-resistant depression",
        "trd",
    ),
    ("My psychiatrist says it is TRD now", "TRD", "trd"),
    ("I was diagnosed with MDD in 2015", "MDD", "depression"),
    ("my depresion is getting worse", "depresion", "depression"),
    ("Major Depression since college", "Major Depression", "depression"),
    (
        "I had postpartum depression after my son was born",
        "postpartum depression",
        "postpartum_depression",
    ),
    ("They call it Persistent Depressive Disorder", "Persistent Depressive Disorder", "dysthymia"),
    ("I have really bad anxeity", "anxeity", "anxiety"),
    ("GAD and panic attacks", "GAD", "anxiety"),
    ("GAD and panic attacks", "panic attacks", "panic_disorder"),
    ("Social anxiety keeps me at home", "Social anxiety", "social_anxiety"),
    ("I was diagnosed with P.T.S.D. after the army", "P.T.S.D.", "ptsd"),
    ("i have p.t.s.d and nightmares", "p.t.s.d", "ptsd"),
    ("my p.t.s.d. is worse at night", "p.t.s.d.", "ptsd"),
    ("my pstd is worse at night", "pstd", "ptsd"),
    ("ptsd from a car crash", "ptsd", "ptsd"),
    ("Complex PTSD from childhood", "Complex PTSD", "cptsd"),
    ("C-PTSD, mostly", "C-PTSD", "cptsd"),
    ("OCD since I was a kid", "OCD", "ocd"),
    ("my o.c.d. is bad", "o.c.d.", "ocd"),
    ("I have Bipolar II disorder", "Bipolar II disorder", "bipolar"),
    ("I'm bi polar", "bi polar", "bipolar"),
    ("bipolor type 2 I think", "bipolor", "bipolar"),
    ("They used to call it manic depression", "manic depression", "bipolar"),
    ("Chronic pain from a car accident", "Chronic pain", "chronic_pain"),
    ("I have CRPS in my left foot", "CRPS", "crps"),
    ("complex regional pain syndrome in my arm", "complex regional pain syndrome", "crps"),
    ("RSD after surgery", "RSD", "crps"),
    ("fibromyalgia and migraines", "fibromyalgia", "fibromyalgia"),
    ("fibromyalgia and migraines", "migraines", "migraine"),
    ("I struggled with anorexia as a teen", "anorexia", "eating_disorder"),
    ("ADHD and insomnia", "ADHD", "adhd"),
    ("insomina every night", "insomina", "insomnia"),
    ("I'm in recovery from alcohol use disorder", "alcohol use disorder", "alcohol_use_disorder"),
    ("substance abuse in my twenties", "substance abuse", "substance_use_disorder"),
]

MEDICATIONS = [
    ("I'm on 100mg of Zoloft", "Zoloft", "sertraline"),
    ("I took zolft for a year", "zolft", "sertraline"),
    ("Lexipro made me feel numb", "Lexipro", "escitalopram"),
    ("escitalopram 20 mg", "escitalopram", "escitalopram"),
    ("Prozac, then Wellbutrin XL", "Prozac", "fluoxetine"),
    ("Prozac, then Wellbutrin XL", "Wellbutrin XL", "bupropion"),
    ("welbutrin gave me headaches", "welbutrin", "bupropion"),
    ("EFFEXOR withdrawal was awful", "EFFEXOR", "venlafaxine"),
    ("duloxetine (Cymbalta) for the pain", "Cymbalta", "duloxetine"),
    ("Trintellix and Viibryd did nothing", "Trintellix", "vortioxetine"),
    ("Trintellix and Viibryd did nothing", "Viibryd", "vilazodone"),
    ("I take Lamictal and lithium", "Lamictal", "lamotrigine"),
    ("I take Lamictal and lithium", "lithium", "lithium"),
    ("Depakote for years", "Depakote", "valproate"),
    ("Abilify was added last spring", "Abilify", "aripiprazole"),
    ("seroquil at night", "seroquil", "quetiapine"),
    ("my doctor added Rexulti", "Rexulti", "brexpiprazole"),
    ("xanax as needed", "xanax", "alprazolam"),
    ("Klonopin 0.5 twice a day", "Klonopin", "clonazepam"),
    ("Adderall and Vyvanse", "Adderall", "amphetamine"),
    ("Adderall and Vyvanse", "Vyvanse", "lisdexamfetamine"),
    ("gabapentin 300 three times a day", "gabapentin", "gabapentin"),
    ("oxycodone for my back", "oxycodone", "oxycodone"),
    ("I'm on Suboxone", "Suboxone", "buprenorphine"),
    ("trazadone to sleep", "trazadone", "trazodone"),
    ("Nardil years ago", "Nardil", "phenelzine"),
    ("naltrexone for drinking", "naltrexone", "naltrexone"),
]

TREATMENTS = [
    ("I tried TMS and ECT", "TMS", "tms"),
    ("I tried TMS and ECT", "ECT", "ect"),
    ("36 sessions of deep TMS", "deep TMS", "tms"),
    ("Transcranial magnetic stimulation helped a bit", "Transcranial magnetic stimulation", "tms"),
    ("I had shock therapy in 2019", "shock therapy", "ect"),
    ("Spravato didn't work for me", "Spravato", "esketamine"),
    ("I did the ketamine nasal spray", "ketamine nasal spray", "esketamine"),
    ("I had IV ketamine infusions last year", "IV ketamine infusions", "ketamine"),
    ("Is ketamine safe?", "ketamine", "ketamine"),
    ("years of CBT and DBT", "CBT", "therapy"),
    ("years of CBT and DBT", "DBT", "therapy"),
    ("EMDR therapy for my trauma", "EMDR therapy", "therapy"),
    ("talk therapy never helped", "talk therapy", "therapy"),
    ("I've tried five antidepressants", "antidepressants", "antidepressants"),
    ("SSRIs made me flat", "SSRIs", "antidepressants"),
    ("a psilocybin retreat", "psilocybin", "psychedelics"),
    ("I have a VNS implant", "VNS", "vns"),
]

INTAKE_FIELDS = [
    ("Actually my phone number is wrong", "my phone number", "phone"),
    ("Can you change the number?", "number", "phone"),
    ("Please fix my e-mail address", "e-mail address", "email"),
    ("my Email is wrong", "my Email", "email"),
    ("The best time to reach me changed", "best time to reach me", "contact_time"),
    ("I moved, update the state", "state", "us_state"),
    ("where I live is wrong", "where I live", "us_state"),
    ("My first name is spelled wrong", "My first name", "first_name"),
    ("Change my diagnosis please", "my diagnosis", "conditions"),
    ("The duration is wrong", "duration", "condition_duration"),
    (
        "The number of antidepressants should be 4",
        "number of antidepressants",
        "antidepressant_count",
    ),
    ("Update my other treatments", "other treatments", "prior_treatments"),
    ("ketamine history is wrong", "ketamine history", "prior_ketamine"),
    ("fix the number of infusions", "number of infusions", "prior_ketamine_infusions"),
    ("fix my current meds", "current meds", "current_medications"),
    ("how I heard about you was wrong", "how I heard about you", "referral_source"),
    ("I want to withdraw the text consent", "text consent", "consent_sms"),
    ("no more Texts please", "Texts", "consent_sms"),
    ("Change my consent to be contacted", "consent to be contacted", "consent_contact"),
]


@pytest.mark.parametrize(("sentence", "text", "expected_id"), CONDITIONS)
def test_condition_found(nlp: Language, sentence: str, text: str, expected_id: str) -> None:
    _check_entity(nlp, sentence, "condition", text, expected_id)


@pytest.mark.parametrize(("sentence", "text", "expected_id"), MEDICATIONS)
def test_medication_found(nlp: Language, sentence: str, text: str, expected_id: str) -> None:
    _check_entity(nlp, sentence, "medication", text, expected_id)


@pytest.mark.parametrize(("sentence", "text", "expected_id"), TREATMENTS)
def test_treatment_found(nlp: Language, sentence: str, text: str, expected_id: str) -> None:
    _check_entity(nlp, sentence, "treatment", text, expected_id)


@pytest.mark.parametrize(("sentence", "text", "expected_id"), INTAKE_FIELDS)
def test_intake_field_found(nlp: Language, sentence: str, text: str, expected_id: str) -> None:
    _check_entity(nlp, sentence, "intake_field", text, expected_id)


def test_several_entities_in_one_message(nlp: Language) -> None:
    doc = nlp("I have TRD and PTSD, tried Lexapro, Wellbutrin and ECT, and now want IV ketamine.")
    assert [(label, normalize(label, text)) for text, label, _ in _entities(doc)] == [
        ("condition", "trd"),
        ("condition", "ptsd"),
        ("medication", "escitalopram"),
        ("medication", "bupropion"),
        ("treatment", "ect"),
        ("treatment", "ketamine"),
    ]


def test_longest_match_wins(nlp: Language) -> None:
    doc = nlp("treatment resistant depression, bipolar depression and the phone number")
    assert _entities(doc) == [
        ("treatment resistant depression", "condition", "trd"),
        ("bipolar depression", "condition", "bipolar"),
        ("phone number", "intake_field", "phone"),
    ]


@pytest.mark.parametrize(
    ("text", "treatment_id", "intake_field_id"),
    [
        ("ketamine", "ketamine", "prior_ketamine"),
        ("antidepressants", "antidepressants", "antidepressant_count"),
    ],
)
def test_phrase_of_two_labels_keeps_the_domain_label(
    nlp: Language, text: str, treatment_id: str, intake_field_id: str
) -> None:
    doc = nlp(f"Please change the {text.upper()} answer")
    assert _entities(doc) == [(text.upper(), "treatment", treatment_id)]
    # The correction handler can still read it as an intake field.
    assert normalize("intake_field", text.upper()) == intake_field_id
    assert normalize("treatment", text.upper()) == treatment_id


@pytest.mark.parametrize(
    "sentence",
    [
        "What time do you open on Friday?",
        "Where should I park when I arrive?",
        "Thanks, see you next week!",
        "Can my husband drive me home afterwards?",
        "I would like to book an appointment.",
        "How much does it cost?",
        "no thanks",
        "",
    ],
)
def test_sentence_without_entities(nlp: Language, sentence: str) -> None:
    assert _entities(nlp(sentence)) == []


@pytest.mark.parametrize(
    ("word", "lemma"),
    [
        ("infusions", "infusion"),
        ("killed", "kill"),
        ("medications", "medication"),
        ("appointments", "appointment"),
        ("went", "go"),
        ("was", "be"),
        ("feeling", "feel"),
    ],
)
def test_lookup_lemmas(nlp: Language, word: str, lemma: str) -> None:
    doc = nlp(f"I think {word} it")
    assert doc[2].text == word
    assert doc[2].lemma_ == lemma


def test_lemmas_inside_entities(nlp: Language) -> None:
    doc = nlp("my ketamine infusions helped")
    assert [token.lemma_ for token in doc.ents[0]] == ["ketamine", "infusion"]


# --- every pattern, in context -------------------------------------------------------------------

CONTEXTS = ("They mentioned {} yesterday", "I was told it was {}.", "({})", "{}")
CASINGS = {"lower": str.lower, "upper": str.upper, "title": str.title}


def _winning_label(labels: set[str]) -> str:
    others = sorted(labels - {"intake_field"})
    return others[0] if others else "intake_field"


@pytest.mark.parametrize("casing", sorted(CASINGS))
@pytest.mark.parametrize("file_name", sorted(FILE_LABELS))
def test_every_pattern_is_found_in_context(nlp: Language, file_name: str, casing: str) -> None:
    """Each phrase is tagged, whatever its case and the punctuation around it."""
    everything = load_patterns(PATTERNS_DIR)
    labels_by_text: dict[str, set[str]] = defaultdict(set)
    id_by_label_text: dict[tuple[str, str], str] = {}
    for entry in everything:
        text = pattern_text(entry["pattern"])
        assert text is not None
        labels_by_text[text].add(entry["label"])
        id_by_label_text[(entry["label"], text)] = entry["id"]

    failures = []
    for entry in _patterns_of(file_name):
        phrase = CASINGS[casing](pattern_text(entry["pattern"]) or "")
        label = _winning_label(labels_by_text[phrase.lower()])
        expected_id = id_by_label_text[(label, phrase.lower())]
        for context in CONTEXTS:
            sentence = context.format(phrase)
            if sentence.endswith(".."):  # "I was told it was p.t.s.d.."
                sentence = sentence[:-1]
            doc = nlp(sentence)
            start = context.index("{}")
            end = start + len(phrase)
            covering = [
                ent
                for ent in doc.ents
                if ent.start_char <= start and ent.end_char >= end and ent.label_ == label
            ]
            if not covering or normalize(label, covering[0].text) != expected_id:
                failures.append(f"{sentence!r}: {_entities(doc)}")
    assert not failures, "\n".join(failures)


def _patterns_of(file_name: str) -> list[dict]:
    return [json.loads(line) for line in _lines(file_name)]


def _lines(file_name: str) -> list[str]:
    text = (PATTERNS_DIR / file_name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


# --- the pattern files ---------------------------------------------------------------------------


def test_pattern_files_are_the_expected_ones() -> None:
    assert sorted(path.name for path in PATTERNS_DIR.glob("*.jsonl")) == sorted(FILE_LABELS)
    assert DEFAULT_PATTERNS_DIR.resolve() == PATTERNS_DIR


@pytest.mark.parametrize("file_name", sorted(FILE_LABELS))
def test_every_pattern_line_is_valid(file_name: str) -> None:
    lines = _lines(file_name)
    assert len(lines) >= 50
    for number, line in enumerate(lines, start=1):
        entry = json.loads(line)
        where = f"{file_name}:{number}"
        assert isinstance(entry, dict), where
        assert set(entry) == {"label", "pattern", "id"}, where
        assert entry["label"] == FILE_LABELS[file_name], where
        assert isinstance(entry["id"], str) and ID_RE.match(entry["id"]), where
        pattern = entry["pattern"]
        if isinstance(pattern, str):
            assert pattern and pattern == " ".join(pattern.lower().split()), where
        else:
            # Token patterns only for one-token dotted acronyms (see the README).
            assert isinstance(pattern, list) and pattern, where
            assert all(list(token) == ["LOWER"] for token in pattern), where
            assert any(token["LOWER"].endswith(".") for token in pattern), where


def test_no_label_maps_a_phrase_to_two_ids() -> None:
    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for entry in load_patterns(PATTERNS_DIR):
        text = pattern_text(entry["pattern"])
        assert text is not None
        key = (entry["label"], text)
        if seen.setdefault(key, entry["id"]) != entry["id"]:
            clashes.append(f"{key}: {seen[key]} / {entry['id']}")
    assert not clashes


def test_no_pattern_is_repeated() -> None:
    keys = [(entry["label"], json.dumps(entry["pattern"])) for entry in load_patterns(PATTERNS_DIR)]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    assert not repeated


def test_only_intake_fields_share_phrases_with_other_labels() -> None:
    labels_by_text: dict[str, set[str]] = defaultdict(set)
    for entry in load_patterns(PATTERNS_DIR):
        labels_by_text[pattern_text(entry["pattern"]) or ""].add(entry["label"])
    shared = {text: labels for text, labels in labels_by_text.items() if len(labels) > 1}
    assert shared == {
        "ketamine": {"treatment", "intake_field"},
        "antidepressants": {"treatment", "intake_field"},
    }


def test_ids_per_label() -> None:
    assert ids("treatment") == sorted(
        [
            "therapy",
            "tms",
            "ect",
            "esketamine",
            "ketamine",
            "antidepressants",
            "psychedelics",
            "vns",
        ]
    )
    assert ids("intake_field") == sorted(
        [
            "first_name",
            "phone",
            "email",
            "contact_time",
            "us_state",
            "conditions",
            "condition_duration",
            "antidepressant_count",
            "prior_treatments",
            "prior_ketamine",
            "prior_ketamine_when",
            "prior_ketamine_infusions",
            "current_medications",
            "referral_source",
            "consent_contact",
            "consent_sms",
        ]
    )
    conditions = set(ids("condition"))
    assert {"depression", "trd", "ptsd", "ocd", "anxiety", "bipolar", "chronic_pain", "crps"} <= (
        conditions
    )
    assert {"fibromyalgia", "migraine", "eating_disorder", "adhd", "insomnia"} <= conditions
    assert ids("no_such_label") == []


def test_every_medication_id_is_its_own_generic_name_pattern() -> None:
    medication_ids = ids("medication")
    assert len(medication_ids) >= 60
    assert [name for name in medication_ids if normalize("medication", name) != name] == []


# --- normalize() and load_patterns() ------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "text", "expected"),
    [
        ("condition", "  Treatment   Resistant\tDepression ", "trd"),
        ("condition", "P.T.S.D.", "ptsd"),
        ("condition", "BIPOLOR", "bipolar"),
        ("medication", "Lexipro", "escitalopram"),
        ("medication", "SEROQUIL", "quetiapine"),
        ("medication", "wellbutrin  xl", "bupropion"),
        ("treatment", "Nasal Spray Ketamine", "esketamine"),
        ("intake_field", "E - Mail", "email"),  # tokens joined with spaces still map
        ("intake_field", "how I found you", "referral_source"),
        ("condition", "Zoloft", None),  # wrong label
        ("medication", "aspirin", None),
        ("no_such_label", "depression", None),
        ("condition", "", None),
    ],
)
def test_normalize(label: str, text: str, expected: str | None) -> None:
    assert normalize(label, text) == expected
    assert normalize(label, text, PATTERNS_DIR) == expected


def test_normalize_caches_each_directory(tmp_path: Path) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    for directory, drug_id in ((first, "drug_a"), (second, "drug_b")):
        directory.mkdir()
        line = {"label": "medication", "pattern": "wonderpill", "id": drug_id}
        (directory / "meds.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")

    assert normalize("medication", "WonderPill", first) == "drug_a"
    assert normalize("medication", "WonderPill", second) == "drug_b"
    assert normalize("medication", "WonderPill") is None

    (first / "meds.jsonl").write_text(
        json.dumps({"label": "medication", "pattern": "wonderpill", "id": "drug_c"}) + "\n",
        encoding="utf-8",
    )
    assert normalize("medication", "wonderpill", first) == "drug_a"  # cached
    clear_cache()
    assert normalize("medication", "wonderpill", first) == "drug_c"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"label": "condition", "pattern": "x", "id": "x"', "invalid JSON"),
        ('["condition", "x", "x"]', "JSON object"),
        ('{"label": "condition", "pattern": "x"}', "'id'"),
        ('{"label": "", "pattern": "x", "id": "x"}', "'label'"),
        ('{"label": "condition", "pattern": " x", "id": "x"}', "spaces"),
        ('{"label": "condition", "pattern": "a  b", "id": "x"}', "spaces"),
        ('{"label": "condition", "pattern": [], "id": "x"}', "token pattern"),
        ('{"label": "condition", "pattern": 3, "id": "x"}', "'pattern'"),
    ],
)
def test_load_patterns_rejects_bad_lines(tmp_path: Path, line: str, message: str) -> None:
    good = json.dumps({"label": "condition", "pattern": "depression", "id": "depression"})
    (tmp_path / "bad.jsonl").write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        load_patterns(tmp_path)
    assert "bad.jsonl:3" in str(error.value)


def test_load_patterns_needs_pattern_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_patterns(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_patterns(tmp_path / "missing")


# --- building from other pattern directories ---------------------------------------------------


def _write_patterns(directory: Path, lines: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (directory / "test.jsonl").write_text(text, encoding="utf-8")
    return directory


def test_rebuild_replaces_the_previous_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "build" / "en_clinic"
    old = _write_patterns(
        tmp_path / "old", [{"label": "medication", "pattern": "oldpill", "id": "old"}]
    )
    new = _write_patterns(
        tmp_path / "new", [{"label": "medication", "pattern": "newpill", "id": "new"}]
    )

    assert build.main(["--out", str(out), "--patterns", str(old)]) == 0
    assert _entities(spacy.load(out)("oldpill or newpill")) == [("oldpill", "medication", "old")]

    assert build.main(["--out", str(out), "--patterns", str(new)]) == 0
    assert _entities(spacy.load(out)("oldpill or newpill")) == [("newpill", "medication", "new")]
    assert [path.name for path in out.parent.iterdir()] == ["en_clinic"]


def test_build_refuses_to_replace_a_directory_that_is_not_a_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")

    assert build.main(["--out", str(out), "--patterns", str(PATTERNS_DIR)]) == 1
    assert "not a saved spaCy pipeline" in capsys.readouterr().err
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert [path.name for path in tmp_path.iterdir()] == ["precious"]


def test_build_reports_a_bad_pattern_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patterns = tmp_path / "patterns"
    patterns.mkdir()
    (patterns / "broken.jsonl").write_text('{"label": "condition"\n', encoding="utf-8")
    out = tmp_path / "out" / "en_clinic"

    assert build.main(["--out", str(out), "--patterns", str(patterns)]) == 1
    assert "broken.jsonl:1" in capsys.readouterr().err
    assert not out.exists()


def test_build_rejects_a_phrase_with_two_ids(tmp_path: Path) -> None:
    patterns = _write_patterns(
        tmp_path,
        [
            {"label": "medication", "pattern": "Zoloft", "id": "sertraline"},
            {"label": "medication", "pattern": "zoloft", "id": "fluoxetine"},
        ],
    )
    with pytest.raises(ValueError, match="'zoloft' maps to both 'sertraline' and 'fluoxetine'"):
        build.build_pipeline(patterns)


def test_build_pipeline_in_memory_uses_the_given_directory(tmp_path: Path) -> None:
    patterns = _write_patterns(
        tmp_path,
        [
            {"label": "condition", "pattern": "Long COVID", "id": "long_covid"},
            {"label": "condition", "pattern": [{"LOWER": "l.c."}], "id": "long_covid"},
        ],
    )
    nlp = build.build_pipeline(patterns)
    doc = nlp("I think it is LONG covid, or L.C. for short")
    assert _entities(doc) == [
        ("LONG covid", "condition", "long_covid"),
        ("L.C.", "condition", "long_covid"),
    ]
    assert isinstance(doc.ents[0], Span)
    assert nlp.meta["name"] == "en_clinic"
