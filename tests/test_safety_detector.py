"""The deterministic crisis detector: every pattern family, the reading rules, the window, the
NLU layer and the pattern file's own checks.

The examples here are written for these tests (not taken from the evaluation sets); the
measured figures on the evaluation sets come from ``python -m bot.safety.evaluate``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.safety.detector import (
    LAYER_NLU,
    LAYER_PATTERNS,
    LAYER_WINDOW,
    CrisisDetector,
    fold,
    get_detector,
    guess_language,
    nlu_crisis_confidence,
)
from bot.safety.patterns import PatternFileError, expand_groups, load_patterns, parse_phrase


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return get_detector()


FAMILY_EXAMPLES = {
    "explicit": [
        "I want to kill myself",
        "honestly I've been feeling suicidal since friday",
        "I am going to end my life",
        "I keep thinking about taking my own life",
        "I want to die",
        "never wanted to die as much as I do tonight",
        "ok I decided, tonight is the end for me",
    ],
    "passive": [
        "everyone would be better off without me",
        "see you next week if i'm still around by then",
        "I wish I was dead",
        "I don't want to wake up tomorrow",
        "there's no reason to live anymore",
        "I'm so tired of being alive",
    ],
    "plan": [
        "does my policy pay out if it's suicide",
        "I've been stockpiling my pills",
        "how many of my sleeping pills would be fatal, asking for myself",
        "I wrote a goodbye letter to my kids",
        "I'm going to jump off the bridge near my house",
        "I bought a rope yesterday",
        "I'm giving away my things to my friends",
    ],
    "self_harm": [
        "I cut myself again last night",
        "i really need to cut tonight",
        "what's the best way to hide fresh cuts from my mom",
        "sh'd again after dinner",
        "I've been hurting myself",
        "I keep burning myself with a lighter on purpose",
        "the urge to self harm is so strong",
        "I slit my wrist",
        "cut way deeper than I meant to, my wrist is a mess",
        "my leg won't stop bleeding from where I cut it",
    ],
    "overdose": [
        "took both my evening pills again by accident and now I'm so dizzy",
        "doubled up on my clonazepam and now my breathing is slow",
        "I took a whole bottle of my sleeping pills",
        "dizzy and shaky after taking all my seroquel an hour ago",
        "I think I overdosed",
        "I swallowed 30 tylenol",
        "I mixed my meds with vodka on purpose",
        "my husband is not breathing",
        "my throat is closing up after I took the new antibiotic",
        "she mixed pills with alcohol and now she is foaming at the mouth",
        "is it true you can't overdose on advil? because I just took 30",
        "got home from the ER, they pumped my stomach",
        "mixed my pills with a whole lot of beer",
    ],
    "emergency": [
        "worst headache of my life since the session ended",
        "chest pain spreading to my left arm",
        "my left arm is numb and my chest feels weird",
    ],
    "slang": [
        "kms",
        "i wanna unalive myself",
        "thinking about sucide",
        "i feel suicidel",
        "gonna kil myself",
    ],
    "spanish": [
        "me quiero morir",
        "ya no quiero vivir",
        "quiero quitarme la vida",
        "me estoy haciendo daño otra vez",
        "me tomé todas las pastillas",
    ],
}

# Two signs of a medical emergency in one message are a crisis; one alone is not.
EMERGENCY_SIGNS = [
    ("trouble breathing and chest pressure since I got home from my infusion", "en"),
    ("heart rate 170 and I feel like I'm going to pass out", "en"),
    ("my blood pressure is 200 over something and I'm seeing spots", "en"),
    ("tomé doble dosis, me duele el pecho y me falta el aire", "es"),
]
ONE_SIGN = [
    "a bit of chest tightness when I get anxious, is that normal?",
    "during the infusion my blood pressure went to 180, they said that's expected",
    "felt short of breath on the stairs today",
]

NOT_CRISIS = [
    "I need to cut back on caffeine before the infusion",
    "we have to cut costs this month",
    "can esketamine make suicidal thoughts worse at first?",
    "does it work for people who are suicidal",
    "my coworkers say the infusion feels like dying, is that true",
    "la ketamina me quitó la depresión",
    "career suicide, but I said what I said",
    "this traffic is killing me",
    "I'm dying to know when my appointment is",
    "the infusion killed my depression",
    "my grandmother died last year",
    "how do I end this chat",
    "moving house in one weekend is basically suicide",
    "my psychiatrist said ketamine can reduce suicidal thoughts quickly",
    "do boosters keep the suicidal thoughts from coming back?",
    "my phone is dying",
    "I'm dead tired after work",
    "what does a booster cost?",
    "I've felt a bit down and my sleep is off",
    "STOP",
    "estoy bien, gracias",
    "me muero de hambre",
    "my friend committed suicide years ago and I still think of her",
    "can you overdose on ketamine at the clinic?",
    "I cut myself shaving this morning",
    "my uncle was foaming at the mouth about the election",
    "overdosed on true crime podcasts this weekend",
    "my neighbor overdosed and died last winter, the street feels different",
    "my cousin overdosed three years ago and I still miss him",
    "is ketamine approved for suicidal depression in teenagers?",
    "my sister wants to know if ketamine could make suicidal thoughts worse",
    "the question about being better off dead, I answered not at all",
    "the infusion was so calm that I did not want it to end",
    "I'd rather die than fill out one more insurance appeal",
    "if I have to answer one more survey question I'll shoot myself",
    "lost two of my students to suicide over the years, it's why I teach the course",
    "back in the 80s I was hospitalized after an overdose, nothing since",
    "the urge to cut has been completely gone since my fourth infusion",
    "before ketamine I wanted to die every single morning, now I garden",
    "what if my suicidal thoughts come back after the series, can I book a booster?",
    "is it only approved for patients with suicidal ideation?",
    "the intake form asks about thoughts of suicide, do I need to fill that in?",
    "that leg day was suicide",
    "ya no tengo esos pensamientos de hacerme daño, gracias",
]


# A topic word in a general question is the classifier's to judge; with no classifier, or with
# anything personal in the sentence or anything about now in the message, it counts at once.
GENERAL = [
    "What are the warning signs of an overdose?",
    "how often do patients feel suicidal during the first week",
    "Do you take people who self harm or only depression",
    "Can someone who is actively suicidal get a same day appointment?",
]
NOT_GENERAL = [
    "is it ok to come in when I'm suicidal",
    "Suicidal, need someone to talk to",
    "suicidal tonight, can anyone call?",
    "Do patients get suicidal again after the series ends?",
    "feeling suicidal today",
    "anyone else get suicidal after the infusion?",
    "Can my son come in? He is suicidal.",
    "does ketamine help? suicidal and out of options",
]
NO_VERDICT = {"intent": {"name": "faq", "confidence": 0.9}, "intent_ranking": []}


def with_verdict(crisis: bool) -> dict[str, object]:
    return {**NO_VERDICT, "crisis_classifier": {"confidence": 0.9 if crisis else 0.1,
                                                "crisis": crisis}}


@pytest.mark.parametrize("text", GENERAL)
def test_a_topic_word_in_a_general_question_is_left_to_the_classifier(
    detector: CrisisDetector, text: str
) -> None:
    signals = detector.signals(text)
    assert signals.general and not signals.strong, text
    assert not detector.assess(text, nlu=with_verdict(False)).crisis
    assert detector.assess(text, nlu=with_verdict(True)).layers == (LAYER_NLU,)
    # Without the classifier (no model, or a model without it) it still counts, recall first.
    assert detector.assess(text).layers == (LAYER_PATTERNS,)
    assert detector.assess(text, nlu=NO_VERDICT).crisis


@pytest.mark.parametrize("text", NOT_GENERAL)
def test_a_topic_word_about_the_writer_or_someone_in_particular_counts_at_once(
    detector: CrisisDetector, text: str
) -> None:
    assessment = detector.assess(text, nlu=with_verdict(False))
    assert assessment.crisis, text
    assert assessment.layers == (LAYER_PATTERNS,)


def test_a_general_question_beside_a_personal_crisis_still_counts(
    detector: CrisisDetector,
) -> None:
    text = "Do patients ever feel suicidal after it? I want to kill myself tonight."
    assert detector.assess(text, nlu=with_verdict(False)).layers == (LAYER_PATTERNS,)


def test_a_laugh_does_not_mask_an_overdose(detector: CrisisDetector) -> None:
    text = "need a refill. also took the whole bottle of my sleeping pills if that matters lol"
    assessment = detector.assess(text)
    assert assessment.crisis and assessment.poison_control
    # The same laugh still masks everyday exaggeration.
    assert not detector.assess("if this meeting runs over I'll shoot myself lol").crisis


def test_question_marks_are_read_per_sentence(detector: CrisisDetector) -> None:
    text = "Is it normal? overdose on my meds. Ok"
    doc = detector.read(text)
    assert [question for _, _, question in detector._sentence_marks(text, doc)] == [
        True, False, False,
    ]
    assert detector.assess(text, nlu=with_verdict(False)).crisis


@pytest.mark.parametrize(
    ("family", "text"),
    [(family, text) for family, texts in FAMILY_EXAMPLES.items() for text in texts],
)
def test_each_family_is_detected(detector: CrisisDetector, family: str, text: str) -> None:
    assessment = detector.assess(text)
    assert assessment.crisis, (family, text)
    assert LAYER_PATTERNS in assessment.layers


@pytest.mark.parametrize("text", NOT_CRISIS)
def test_hard_negatives_are_not_flagged(detector: CrisisDetector, text: str) -> None:
    assert not detector.assess(text).crisis, text


@pytest.mark.parametrize(("text", "language"), EMERGENCY_SIGNS)
def test_two_emergency_signs_in_one_message_are_a_crisis(
    detector: CrisisDetector, text: str, language: str
) -> None:
    assessment = detector.assess(text)
    assert assessment.crisis, text
    assert assessment.layers == (LAYER_WINDOW,)
    assert assessment.language == language


@pytest.mark.parametrize("text", ONE_SIGN)
def test_one_emergency_sign_alone_is_not_a_crisis(detector: CrisisDetector, text: str) -> None:
    assessment = detector.assess(text)
    assert not assessment.crisis, text
    assert assessment.window_score == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text",
    ["I took too many pills on purpose", "I overdosed an hour ago", "me tomé todas las pastillas"],
)
def test_overdose_adds_poison_control(detector: CrisisDetector, text: str) -> None:
    assert detector.assess(text).poison_control


def test_no_poison_control_without_overdose(detector: CrisisDetector) -> None:
    assert not detector.assess("I want to kill myself").poison_control


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("quiero suicidarme", "es"),
        ("no quiero seguir viviendo", "es"),
        ("I want to die", "en"),
        ("Hola, ¿a qué hora abren?", "es"),
        ("hello, when do you open?", "en"),
    ],
)
def test_reply_language(detector: CrisisDetector, text: str, language: str) -> None:
    assert detector.assess(text).language == language


def test_guess_language_needs_more_than_one_spanish_word() -> None:
    assert guess_language("no quiero seguir viviendo") == "es"
    assert guess_language("quiero") == "en"  # then only a Spanish pattern makes it Spanish


def test_crisis_inside_an_intake_answer(detector: CrisisDetector) -> None:
    text = "Sertraline and lithium. Honestly I've had thoughts of suicide this week. Anyway."
    assert detector.assess(text).crisis


def test_reading_folds_case_accents_punctuation_and_emoji() -> None:
    assert fold("Quiero SUICIDARME!!! 😔") == "quiero suicidarme"
    assert fold("I can’t") == "i can't"
    # letters written with dots are joined
    assert fold("K.M.S.") == "kms"
    assert fold("at 3 a.m. then") == "at 3 am then"


def test_initials_do_not_split_sentences(detector: CrisisDetector) -> None:
    text = "In 2010 I overdosed. I have pills saved up for 3 a.m."
    signals = detector.signals(text)
    assert signals.history
    assert {cue.family for cue in signals.strong} == {"plan"}


@pytest.mark.parametrize(
    ("text", "norms"),
    [
        ("I don't want to live", ["i", "do", "not", "want", "to", "live"]),
        ("i dont want to live", ["i", "do", "not", "want", "to", "live"]),
        ("killing myself", ["kill", "myself"]),
        ("kms", ["kill", "myself"]),
        ("k.m.s.", ["kill", "myself"]),
        ("thinkin of killin myself", ["think", "of", "kill", "myself"]),
        ("suicdie", ["suicide"]),
    ],
)
def test_reading_rules(detector: CrisisDetector, text: str, norms: list[str]) -> None:
    assert [token.norm_ for token in detector.read(text)] == norms


def test_fuzzy_matching_leaves_english_words_alone(detector: CrisisDetector) -> None:
    # "subside" is two edits from "suicide" but is an English word.
    assert [token.norm_ for token in detector.read("subside")] == ["subside"]
    assert not detector.assess("I hope the symptoms subside soon").crisis


def test_one_warning_sign_alone_is_not_a_crisis(detector: CrisisDetector) -> None:
    assessment = detector.assess("I can't take it anymore")
    assert not assessment.crisis
    assert assessment.window_score == pytest.approx(0.5)


def test_warning_signs_spread_over_messages_are_a_crisis(detector: CrisisDetector) -> None:
    history = ["work has been awful", "I can't take it anymore"]
    assessment = detector.assess("I've got all my pills right here", history=history)
    assert assessment.crisis
    assert assessment.layers == (LAYER_WINDOW,)
    assert assessment.window_score >= 1.0


def test_window_needs_a_sign_in_the_newest_message(detector: CrisisDetector) -> None:
    history = ["I can't take it anymore", "I have my pills right here"]
    assert not detector.assess("ok, what time do you open?", history=history).crisis


def test_window_only_counts_the_last_messages(detector: CrisisDetector) -> None:
    history = ["I can't take it anymore", "hi", "ok", "thanks", "sure"]
    assert not detector.assess("I have my pills", history=history).crisis


def test_nlu_layer_counts_when_crisis_is_the_top_intent(detector: CrisisDetector) -> None:
    parse = {
        "intent": {"name": "nlu_fallback", "confidence": 0.45},
        "intent_ranking": [
            {"name": "nlu_fallback", "confidence": 0.45},
            {"name": "crisis", "confidence": 0.62},
            {"name": "greet", "confidence": 0.2},
        ],
    }
    assessment = detector.assess("everything is grey and pointless", nlu=parse)
    assert assessment.crisis
    assert assessment.layers == (LAYER_NLU,)
    assert nlu_crisis_confidence(parse) == pytest.approx(0.62)


@pytest.mark.parametrize(
    ("verdict", "text", "crisis"),
    [
        ({"confidence": 0.81, "crisis": True}, "everything is grey and pointless", True),
        # Too short for the model layer: a name typed as an answer is the usual false alarm.
        ({"confidence": 0.81, "crisis": True}, "grey", False),
        ({"confidence": 0.41, "crisis": False}, "everything is grey and pointless", False),
        ("not a verdict", "everything is grey and pointless", False),
    ],
)
def test_nlu_layer_counts_the_crisis_classifier(
    detector: CrisisDetector, verdict: object, text: str, crisis: bool
) -> None:
    parse = {
        "intent": {"name": "greet", "confidence": 0.9},
        "intent_ranking": [{"name": "greet", "confidence": 0.9}],
        "crisis_classifier": verdict,
    }
    assessment = detector.assess(text, nlu=parse)
    assert assessment.crisis is crisis
    assert assessment.layers == ((LAYER_NLU,) if crisis else ())
    assert assessment.nlu_confidence == (pytest.approx(0.81) if crisis else 0.0)


def test_in_a_model_with_the_classifier_its_verdict_outranks_the_intent(
    detector: CrisisDetector,
) -> None:
    # The intent classifier was this sure of ordinary check-in answers.
    parse = {
        "intent": {"name": "crisis", "confidence": 1.0},
        "intent_ranking": [{"name": "crisis", "confidence": 1.0}],
        "crisis_classifier": {"confidence": 0.4, "crisis": False},
    }
    assert not detector.assess("I'm sleeping poorly again", nlu=parse).crisis
    del parse["crisis_classifier"]
    assert detector.assess("I'm sleeping poorly again", nlu=parse).layers == (LAYER_NLU,)


@pytest.mark.parametrize(
    "ranking",
    [
        [{"name": "greet", "confidence": 0.9}, {"name": "crisis", "confidence": 0.1}],
        [{"name": "crisis", "confidence": 0.3}],
        [],
    ],
)
def test_nlu_layer_ignores_weak_or_lower_crisis(detector: CrisisDetector, ranking: list) -> None:
    parse = {"intent": ranking[0] if ranking else {}, "intent_ranking": ranking}
    assert not detector.assess("hello there", nlu=parse).crisis


def test_phrase_language() -> None:
    phrase = parse_phrase("want|wish [to] ... (end it|go on)", "test")
    assert len(phrase.variants) == 2
    first = phrase.variants[0]
    assert first[0].words == ("want", "wish")
    assert first[1].optional
    assert first[2].gap
    assert expand_groups("a (b|c d) e", "test") == ["a b e", "a c d e"]
    assert expand_groups("a (b|c) e", "test") == ["a b|c e"]


@pytest.mark.parametrize(
    "phrase",
    ["", "... kill", "kill ...", "[my]", "kill (myself|)", "kill (myself", "=took|take"],
)
def test_malformed_phrases_are_rejected(phrase: str) -> None:
    with pytest.raises(PatternFileError):
        parse_phrase(phrase, "test")


def pattern_file(tmp_path: Path, phrases: str, strength: str = "strong",
                 spellings: str = "") -> Path:
    """A one-family pattern file (``spellings`` is YAML for the spellings mapping)."""
    path = tmp_path / "patterns.yml"
    head = f"version: 1\nspellings:\n{spellings}" if spellings else "version: 1\n"
    path.write_text(
        f"{head}families:\n  a:\n    strength: {strength}\n    phrases: [{phrases}]\n"
        "not_crisis: [dead tired]\n"
    )
    return path


def test_pattern_file_rejects_duplicates_and_bad_strength(tmp_path: Path) -> None:
    path = pattern_file(tmp_path, "kill myself, kill myself")
    with pytest.raises(PatternFileError, match="duplicate"):
        load_patterns(path)
    path = pattern_file(tmp_path, "kill myself", strength="loud")
    with pytest.raises(PatternFileError, match="strength"):
        load_patterns(path)


def test_a_word_that_reads_as_two_must_be_a_group(tmp_path: Path) -> None:
    path = pattern_file(tmp_path, "kms|die now", spellings="  kms: kill myself\n")
    with pytest.raises(PatternFileError, match="group"):
        CrisisDetector.from_file(path)


def test_the_project_pattern_file_loads_and_every_family_has_phrases() -> None:
    patterns = load_patterns()
    names = {family.name for family in patterns.families}
    assert {"explicit", "passive", "plan", "self_harm", "overdose", "spanish"} <= names
    assert all(family.phrases for family in patterns.families)
    assert patterns.family("overdose").poison_control


def test_optional_brackets_take_one_word() -> None:
    with pytest.raises(PatternFileError, match="one word"):
        parse_phrase("hope [for me] die", "test")


def test_unquoted_yaml_booleans_in_spellings_are_rejected(tmp_path: Path) -> None:
    path = pattern_file(tmp_path, "kill myself", spellings="  offing: off\n")
    with pytest.raises(PatternFileError, match="quoted"):
        load_patterns(path)


def test_the_same_warning_sign_twice_counts_once(detector: CrisisDetector) -> None:
    signals = detector.signals("do I take my pills before the infusion or my pills after?")
    assert signals.weak_weight < 1.0


def test_nlu_layer_ignores_very_short_messages(detector: CrisisDetector) -> None:
    # The classifier guesses crisis for some unknown single words, e.g. a name given as an
    # intake answer; short crisis messages are caught by the patterns instead.
    parse = {"intent": {"name": "crisis", "confidence": 0.99},
             "intent_ranking": [{"name": "crisis", "confidence": 0.99},
                                {"name": "inform", "confidence": 0.01}]}
    assert not detector.assess("Yusuf", nlu=parse).crisis
    assert detector.assess("kms", nlu=parse).crisis


# -- denials: "no thoughts of hurting myself" -------------------------------------------------

DENIALS = [
    ("Tired all week. Not suicidal, just worn out", "tired all week just worn out"),
    ("low mood, not wanting to die or anything", "low mood or anything"),
    ("answered 0 on question 9 again", "again"),
    ("sad but nada de ideas suicidas", "sad but"),
    ("mood is low this week. no thoughts of hurting myself, just tired",
     "mood is low this week just tired"),
    ("sleep 5 hrs, anxiety high, no suicidal thoughts", "sleep 5 hrs anxiety high"),
    ("I'm definitely not suicidal, just worn out", "i just worn out"),
    ("no self harm urges. appetite down", "appetite down"),
    ("question 9 is a zero", ""),
    ("estoy triste pero no tengo pensamientos de hacerme daño", "estoy triste pero"),
    # check-in answers written like a form
    ("sleep 6, mood 4. self harm thoughts: none", "sleep 6 mood 4"),
    ("energy low, suicidal thoughts = 0", "energy low"),
    ("q9 not at all", ""),
    ("rough week, but I haven't had any urges to hurt myself", "rough week but i"),
    ("no thoughts of being better off dead, just tired", "just tired"),
    ("feeling flat, no thoughts of suicide or self harm", "feeling flat"),
    ("estoy cansada pero no pienso en hacerme daño", "estoy cansada pero"),
    ("Sleep ok. No current thoughts. Energy low", "sleep ok energy low"),
    ("feeling flat, not hurting myself, just tired", "feeling flat just tired"),
]


@pytest.mark.parametrize(("text", "scored"), DENIALS)
def test_a_denial_is_left_out_of_what_the_classifier_scores(
    detector: CrisisDetector, text: str, scored: str
) -> None:
    assert detector.classifier_text(text) == scored
    assert not detector.signals(text).strong


def test_a_message_without_a_denial_is_scored_as_written(detector: CrisisDetector) -> None:
    text = "Feeling low. No energy at all."
    assert detector.classifier_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        # the risk is elsewhere in the message
        "no suicidal thoughts but i took the whole bottle an hour ago",
        "i'm not suicidal, i just want to go to sleep and never wake up",
        # a limited denial is not a denial
        "no plans to kill myself yet",
        "no thoughts of hurting myself until tonight when i take the pills",
        # "no thoughts" alone denies nothing
        "no thoughts, i just want to kill myself",
        "i haven't wanted to hurt myself until today",
        "self harm: yes, cut myself last night",
        "no quiero morir pero tomé 30 pastillas hace una hora",
    ],
)
def test_crisis_language_beside_a_denial_still_counts(detector: CrisisDetector, text: str) -> None:
    assert detector.signals(text).strong


def test_a_limited_denial_is_scored_whole(detector: CrisisDetector) -> None:
    text = "no plans to kill myself tonight but tomorrow"
    assert detector.classifier_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "what dose of my seroquel would be fatal",
        "how many of my sleeping pills would kill me",
        "what amount of tylenol is lethal? asking for a reason",
    ],
)
def test_asking_for_a_lethal_amount_is_a_plan(detector: CrisisDetector, text: str) -> None:
    assert "plan" in {cue.family for cue in detector.signals(text).strong}


@pytest.mark.parametrize(
    "text", ["what dose will I get at my first infusion", "how much does a booster cost"]
)
def test_ordinary_dose_questions_are_not_a_plan(detector: CrisisDetector, text: str) -> None:
    assert not detector.signals(text).strong


# -- the person's distant past, and everyday jokes -------------------------------------------

HISTORY = [
    # (message, what the classifier scores)
    ("Suicide attempt in 2009, inpatient for ten days. Doing alright now.", "doing alright now"),
    ("When I was 16 I cut myself a lot. Therapy helped.", "therapy helped"),
    ("History of overdose, 2012, accidental. Here for the anhedonia", "here for the anhedonia"),
    ("As a teenager I tried to hang myself. I'm 45 now and stable", "i am 45 now and stable"),
    ("My uncle died by suicide. Putting it in the family history box",
     "putting it in the family history box"),
    ("intenté suicidarme hace muchos años. ahora estoy estable", "ahora estoy estable"),
    # a present phrase inside a denial ("no current thoughts") does not cancel the history
    ("Overdose attempt in 2008, no current thoughts. Here for the fatigue",
     "here for the fatigue"),
    ("Suicidal ideation is on my chart from my old psychiatrist. Mostly I want help with sleep",
     "mostly i want help with sleep"),
]


@pytest.mark.parametrize(
    "text",
    [
        # the past beside a present: the whole message counts
        "I attempted suicide in 2012 and I want to kill myself again",
        "tried to overdose when I was 19, now I'm planning to do it tonight",
        "Past attempt 2015. I have been cutting myself again this week",
        "I used to cut myself in high school and started again",
        "suicide attempt years ago and I keep thinking about suicide",
        "intenté suicidarme hace años y quiero matarme otra vez",
        # recent is never history
        "I tried to kill myself last week",
        "I overdosed 3 days ago on purpose",
        "Two months ago I tried to kill myself and ended up in the ICU",
        # a year this year or last is not the distant past
        f"I tried to kill myself in {date.today().year}",
        # a relative in danger now
        "my husband took all his pills and I think he died, he's not breathing",
    ],
)
def test_the_past_beside_the_present_or_a_recent_event_still_counts(
    detector: CrisisDetector, text: str
) -> None:
    signals = detector.signals(text)
    assert not signals.history
    assert signals.strong


def test_history_masks_only_its_own_sentence(detector: CrisisDetector) -> None:
    text = "Prior suicide attempt in 2011. I have 60 pills saved up."
    signals = detector.signals(text)
    assert signals.history
    assert {cue.family for cue in signals.strong} == {"plan"}
    assert detector.classifier_text(text) == "i have 60 pills saved up"


JOKES = [
    ("if I have to redo this spreadsheet one more time I'll shoot myself lol", ""),
    ("the dentist music is making me want to die lmao. anyway see you at 3",
     "anyway see you at 3"),
    ("If my team loses again I'm jumping off the roof \U0001F602", ""),
]


@pytest.mark.parametrize(
    ("reading", "text", "scored"),
    [("history", text, scored) for text, scored in HISTORY]
    + [("joke", text, scored) for text, scored in JOKES],
)
def test_distant_history_and_everyday_jokes_are_masked_and_left_out_of_what_is_scored(
    detector: CrisisDetector, reading: str, text: str, scored: str
) -> None:
    signals = detector.signals(text)
    assert getattr(signals, reading)
    assert not signals.strong
    assert detector.classifier_text(text) == scored


@pytest.mark.parametrize(
    "text",
    [
        # a laugh alone is not a joke
        "i want to kill myself lol",
        # the person says they mean it
        "lol if one more thing goes wrong i'll kill myself, not joking",
        "haha if i have to do this one more day i'll kill myself for real",
        # a joke about the treatment or life failing
        "if this infusion doesn't work i'm going to kill myself lol",
        # the same things said plainly
        "if I have to redo this spreadsheet one more time I'll shoot myself",
    ],
)
def test_a_joke_that_is_meant_still_counts(detector: CrisisDetector, text: str) -> None:
    signals = detector.signals(text)
    assert not signals.joke
    assert signals.strong


def test_past_year_only_matches_years_at_least_two_years_ago(detector: CrisisDetector) -> None:
    this_year = date.today().year
    assert detector.signals(f"suicide attempt in {this_year - 2}. fine now").history
    assert not detector.signals(f"suicide attempt in {this_year - 1}. fine now").history
    assert not detector.signals("suicide attempt since 2010, it never stopped").history


def test_sentences_line_up_with_the_reading(detector: CrisisDetector) -> None:
    text = "kms... no wait. Attempt in 2010!! ok; doing ok\nbye"
    doc = detector.read(text)
    marks = detector._sentence_marks(text, doc)
    assert [doc[start:end].text for start, end, _ in marks] == [
        "kill myself", "no wait", "attempt in 2010", "ok", "doing ok", "bye",
    ]


def test_history_and_jokes_sections_are_checked(tmp_path: Path) -> None:
    path = pattern_file(tmp_path, "kill myself")
    path.write_text(path.read_text() + "history:\n  past: [years ago]\n")
    with pytest.raises(PatternFileError, match="history"):
        load_patterns(path)
    path = pattern_file(tmp_path, "kill myself")
    path.write_text(path.read_text() + "jokes:\n  marker: [lol]\n  cause: [if]\n")
    with pytest.raises(PatternFileError, match="jokes"):
        load_patterns(path)
    path = pattern_file(tmp_path, "kill myself")
    path.write_text(path.read_text() + "general:\n  topic: [suicide]\n  question: [how]\n")
    with pytest.raises(PatternFileError, match="general"):
        load_patterns(path)


# Recovery told as such is read like history; told beside a return, or beside an overdose,
# everything counts.
RECOVERY = [
    "Before my series I cut most nights. The urge to cut has completely disappeared since.",
    "I came in wanting to kill myself and now I'm booking a beach trip",
    "I tried to hang myself when I was 19. I'm 60 now and never felt that way again.",
    "the thoughts of suicide went away after the second infusion, thank you all",
    "I was suicidal when I first started here. I'm not anymore.",
    "Began the infusions last spring when I was suicidal, now I coach my son's soccer team",
    # "back at work" is not the thoughts coming back
    "The suicidal thoughts went away after the fourth infusion and I'm back at work",
    # then and now
    "Six weeks ago I wanted to die. Today I planted tomatoes with my niece.",
    "I went from planning my funeral to planning a wedding",
    "the old me would have wanted to die over this, now I just call my sister",
    "my suicidal ideation scores dropped since the infusions",
]
RECOVERY_BESIDE_A_RETURN = [
    "the thoughts of suicide went away after the second infusion but they're back tonight",
    "I came in wanting to kill myself and I still want to",
    "I tried to hang myself when I was 19. Never felt that way again until this week.",
    "the urge to cut disappeared for a month, but I'm cutting again",
    "I was suicidal when I first came in. The thoughts are back this week.",
    "the suicidal thoughts went away but I'm back in a dark place and want to die",
    "the urges to cut went away after infusion 2, but today I cut",
    # the future is not recovery
    "I'll start my infusions next week when I am less suicidal, I hope",
]
# A relapse told in passing beside the treatment, and "before" told of the future, are not
# masked as recovery: the classifier scores the whole message.
RELAPSE_IN_PASSING = [
    "Sleep ok. I cut on Sunday, first time since before my infusions.",
    "Before ketamine I burned myself most weeks. I burned myself again yesterday.",
    "how do I hide fresh burn marks before my infusion Thursday",
]


@pytest.mark.parametrize("text", RECOVERY)
def test_recovery_is_masked_and_left_out_of_what_is_scored(
    detector: CrisisDetector, text: str
) -> None:
    assert not detector.assess(text).crisis, text
    assert detector.classifier_text(text) != text


@pytest.mark.parametrize("text", RELAPSE_IN_PASSING)
def test_a_relapse_in_passing_is_scored_whole(detector: CrisisDetector, text: str) -> None:
    assert detector.classifier_text(text) == text


@pytest.mark.parametrize("text", RECOVERY_BESIDE_A_RETURN)
def test_recovery_beside_a_return_still_counts(detector: CrisisDetector, text: str) -> None:
    assert detector.assess(text).crisis, text


def test_recovery_never_masks_an_overdose(detector: CrisisDetector) -> None:
    text = "he was six months clean, the urges went away, and now he took all my xanax"
    assert detector.assess(text).crisis
    assert detector.assess(text).poison_control


@pytest.mark.parametrize(
    "text",
    [
        "40 days clean from cutting but crushing chest pain since the session",
        "the urges went away since the infusion, but chest pain and my left arm is numb",
    ],
)
def test_recovery_never_masks_a_medical_emergency(detector: CrisisDetector, text: str) -> None:
    assert detector.assess(text).crisis, text


def test_the_medical_families_are_marked() -> None:
    medical = {family.name for family in load_patterns().families if family.medical}
    assert medical == {
        "overdose", "spanish_overdose", "emergency", "emergency_signs", "emergency_signs_es"
    }
