"""Model text made safe to show and save (streamdesk/chat/model_text.py)."""
from __future__ import annotations

from streamdesk.chat.model_text import PieceCleaner, storable


def test_a_surrogate_pair_split_across_two_pieces_is_joined_again():
    clean = PieceCleaner().clean
    assert [clean("A\ud83d"), clean("\ude00B")] == ["A", "\U0001f600B"]


def test_nul_and_unpaired_surrogates_become_the_replacement_character():
    clean = PieceCleaner().clean
    assert [clean("C\x00D"), clean("E\udc00F"), clean("\ud83d"), clean("G")] == [
        "C\ufffdD", "E\ufffdF", "", "\ufffdG"]
    assert storable("\ud83d\ude00 \ud800 \x00") == "\U0001f600 \ufffd \ufffd"


def test_ordinary_text_passes_as_it_is():
    text = "流式 replies\u2028survive 😀"
    assert PieceCleaner().clean(text) is text and storable(text) is text
