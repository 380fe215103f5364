"""IFEval checkers: known passes and failures, strict vs loose, unsupported ids."""

import pytest

from maestro_lit.text.instructions import (
    SUPPORTED_INSTRUCTIONS,
    UnsupportedInstructionError,
    check_instruction,
    check_instruction_loose,
    loose_variants,
)

CASES = [
    # (instruction id, kwargs, response that passes, response that fails)
    ("keywords:existence", {"keywords": ["water", "bottle"]}, "Carry a Water bottle.", "Carry a flask of water."),
    ("keywords:forbidden_words", {"forbidden_words": ["hot"]}, "A photograph of warm sun.", "It is hot today."),
    (
        "keywords:frequency",
        {"keyword": "book", "frequency": 2, "relation": "at least"},
        "A book and a Book.",
        "One book only.",
    ),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "less than"}, "One cat.", "cat cat"),
    (
        "keywords:letter_frequency",
        {"letter": "s", "let_frequency": 3, "let_relation": "at least"},
        "Sea shells sink",
        "sea",
    ),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "one two three", "one two"),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "one two", "one two three"),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 2, "relation": "less than"},
        "Only one sentence here.",
        "First. Second! Third?",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "First part.\n***\nSecond part.",
        "First part.\n\nSecond part.",
    ),
    ("detectable_format:json_format", {}, '```json\n{"season": "spring"}\n```', "season: spring"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "* a\n* b\n- c", "* a\n* b"),
    ("detectable_format:title", {}, "<<Rain Song>>\nDrops fall.", "Rain Song\nDrops fall."),
    ("change_case:english_lowercase", {}, "hello friends, come along", "Hello friends"),
    ("change_case:english_capital", {}, "GO TEAM GO!", "GO Team GO!"),
    ("punctuation:no_comma", {}, "Boil water then add the egg.", "Boil water, then add the egg."),
    (
        "startend:end_checker",
        {"end_phrase": "Have a wonderful day!"},
        "Happy birthday. Have a wonderful day!",
        "Have a wonderful day! Happy birthday.",
    ),
    ("startend:quotation", {}, '"Blue is my favorite."', "Blue is my favorite."),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.S."},
        "Water the plants.\nP.S. Also the cactus.",
        "Water the plants. PS also the cactus.",
    ),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", "Dear [name]."),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", "Answer one.\n******\nAnswer one."),
]


@pytest.mark.parametrize("instruction_id,kwargs,good,bad", CASES)
def test_strict_known_answers(instruction_id, kwargs, good, bad):
    assert check_instruction(instruction_id, good, kwargs) is True
    assert check_instruction(instruction_id, bad, kwargs) is False


def test_required_ids_supported():
    required = {
        "keywords:existence",
        "keywords:forbidden_words",
        "keywords:frequency",
        "keywords:letter_frequency",
        "length_constraints:number_words",
        "length_constraints:number_sentences",
        "length_constraints:number_paragraphs",
        "detectable_format:json_format",
        "detectable_format:number_bullet_lists",
        "detectable_format:title",
        "change_case:english_lowercase",
        "change_case:english_capital",
        "punctuation:no_comma",
        "startend:end_checker",
        "startend:quotation",
        "detectable_content:postscript",
    }
    assert required <= SUPPORTED_INSTRUCTIONS


def test_loose_passes_where_strict_fails():
    # A chatty first line breaks "lowercase" strictly; loose drops the first line.
    response = "Sure! Here it is:\nall lowercase words here"
    assert not check_instruction("change_case:english_lowercase", response, {})
    assert check_instruction_loose("change_case:english_lowercase", response, {})
    # Markdown bold around the quotes breaks "quotation" strictly; loose strips asterisks.
    bold = '**"Blue."**'
    assert not check_instruction("startend:quotation", bold, {})
    assert check_instruction_loose("startend:quotation", bold, {})
    # Loose still fails when no variant follows the instruction.
    assert not check_instruction_loose("punctuation:no_comma", "a, b\nc, d\ne, f", {})


def test_loose_variants_follow_protocol():
    variants = loose_variants("first\nmiddle\nlast*")
    assert len(variants) == 8
    assert {"middle\nlast*", "first\nmiddle", "middle", "middle\nlast"} <= set(variants)


def test_empty_response_never_follows():
    assert not check_instruction("punctuation:no_comma", "   ", {})


def test_none_kwargs_ignored_and_bad_kwargs_named():
    assert check_instruction("punctuation:no_comma", "ok", {"num_words": None})
    with pytest.raises(ValueError, match="number_words"):
        check_instruction("length_constraints:number_words", "a b", {})
    with pytest.raises(ValueError, match="relation"):
        check_instruction("length_constraints:number_words", "a b", {"num_words": 1, "relation": "about"})


def test_unsupported_id_lists_it():
    with pytest.raises(UnsupportedInstructionError, match="language:response_language"):
        check_instruction("language:response_language", "hola", {"language": "es"})
