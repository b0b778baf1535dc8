"""Names people choose and others read: usernames, server and channel names. One rule, for the
HTTP API and the WebSocket alike.

A name is shown to everyone else, so it must not lie about what it is. It is
- NFC-normalised, so "é" typed as one character or as "e" plus an accent is one name;
- free of characters that show nothing or rearrange what follows: controls, format characters
  (a zero-width space, a right-to-left override that turns "abc\\u202egnp.exe" into
  "abcexe.png"), line and paragraph separators, unassigned code points and noncharacters, and
  U+FFFD, which stands for bytes that were not text at all;
- visible: not only spaces, marks, or letters that render as nothing (Hangul fillers, the
  braille blank), which would also leave an empty avatar;
- readable: at most MAX_MARKS combining marks on one character (no "Zalgo" text);
- written in one script (with digits and punctuation): "ada" spelt with a Cyrillic "a"
  (U+0430) beside a Latin "da" impersonates "ada". Japanese, Chinese and Korean names may
  mix Han with their own scripts and Latin, as Unicode's "highly restrictive" profile allows.

The road not taken: Unicode's full confusable detection (UTS #39 skeletons, so that "ada"
wholly in Cyrillic letters and the Latin "ada" count as the same name) needs its data tables
and a registry of names to compare with. A production service would add it where names are
claimed.
"""

import unicodedata

MAX_MARKS = 3
# Categories that never belong in a name: controls, format characters, lone surrogates,
# unassigned code points (noncharacters among them), line and paragraph separators.
REFUSED_CATEGORIES = {
    "Cc": "control",
    "Cf": "invisible formatting",
    "Cs": "surrogate",
    "Cn": "unassigned or reserved",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}
# Joiners are format characters too, but emoji sequences (👩‍👩‍👧) and some scripts need
# them: they may stand between two visible characters.
JOINERS = {"\u200c", "\u200d"}
# Letters and symbols that render as blank space.
BLANK_LOOKING = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u17b4", "\u17b5"}
REPLACEMENT = "\ufffd"
# Scripts that may share a name with Han (Unicode's "highly restrictive" profile), and Latin.
CJK_FAMILIES = [
    {"CJK", "HIRAGANA", "KATAKANA", "LATIN"},
    {"CJK", "BOPOMOFO", "LATIN"},
    {"CJK", "HANGUL", "LATIN"},
]


def script_of(char: str) -> str | None:
    """The script of a letter, as the first word of its Unicode name ("LATIN", "CYRILLIC",
    "CJK"); None for digits, punctuation, spaces and marks, which every script shares.
    Compatibility forms count as what they stand for: a fullwidth "a" (U+FF41) is Latin."""
    if not unicodedata.category(char).startswith("L"):
        return None
    base = unicodedata.normalize("NFKC", char)[:1] or char
    return unicodedata.name(base, "").split(" ", 1)[0] or None


def joins_two_characters(name: str, index: int) -> bool:
    """Whether the joiner at `index` stands between two characters that are not themselves
    invisible (a lone, leading, trailing or doubled joiner hides nothing good)."""
    if not 0 < index < len(name) - 1:
        return False
    neighbours = name[index - 1], name[index + 1]
    return all(
        c not in JOINERS and unicodedata.category(c) not in REFUSED_CATEGORIES for c in neighbours
    )


def check_name(text: str, low: int, high: int) -> str:
    """The name, trimmed and normalised; ValueError("must ...") says what is wrong with it.

    The sentence completes "The name ...", so each caller can name the field it checks."""
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)")
    name = unicodedata.normalize("NFC", text).strip()
    for index, char in enumerate(name):
        if char in JOINERS and joins_two_characters(name, index):
            continue
        kind = REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind == "control":
            raise ValueError("must not contain control characters such as newlines or tabs")
        if kind is not None:
            raise ValueError(f"must not contain {kind} characters such as U+{ord(char):04X}")
        if char == REPLACEMENT:
            raise ValueError("must be valid text (it contains U+FFFD, left by undecodable bytes)")
        if char in BLANK_LOOKING:
            raise ValueError(f"must not contain characters that show as blank (U+{ord(char):04X})")
    marks = 0
    for char in name:
        marks = marks + 1 if unicodedata.category(char) in {"Mn", "Me"} else 0
        if marks > MAX_MARKS:
            raise ValueError(f"must not stack more than {MAX_MARKS} marks on one character")
    visible = [char for char in name if unicodedata.category(char)[0] not in {"Z", "M"}]
    if name and not visible:
        raise ValueError("must contain visible characters")
    scripts = {script for char in name if (script := script_of(char))}
    if len(scripts) > 1 and not any(scripts <= family for family in CJK_FAMILIES):
        listed = " and ".join(sorted(script.lower() for script in scripts))
        raise ValueError(f"must be written in one script, not {listed} letters mixed")
    if not low <= len(name) <= high:
        raise ValueError(
            f"must be {low} to {high} characters long once trimmed (it has {len(name)})"
        )
    return name
