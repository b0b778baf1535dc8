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
  mix Han with their own scripts and Latin, as Unicode's "highly restrictive" profile allows;
- free of characters that only pick a glyph where they have none to pick: a variation selector
  only after a symbol (an emoji's picture form), a Mongolian free variation selector only
  after a Mongolian letter, a joiner only inside an emoji sequence or between letters of the
  scripts that join (Arabic, Indic, ...), never U+034F; so "ada" + U+FE0F and "a\u200dda" are
  refused rather than shown as "ada";
- not the announcer's look-alike (📣 + U+FE0F renders as 📣).

Whether a name looks like another one is `skeleton()`: Unicode's idea (UTS #39: two names
that render alike have the same skeleton) on a subset of its confusables table, the letters
of Cyrillic, Greek and Latin that pass for basic Latin ones ("ada" in Cyrillic letters,
"ada" with Latin alphas U+0251, "alice" with a dotless i U+0131), and 0/O, 1/l/I, rn/m. The
full table (thousands of pairs) is what a production service would load; this subset is what
a workshop's attendees type. `looks_like` compares a name with others, for the places where
names are claimed.
"""

import unicodedata
from collections.abc import Iterable

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
ANNOUNCER = "📣"  # the name announcements are signed with (accord_app/chat/protocol.py)
VARIATION_SELECTORS = {chr(c) for c in [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]}
MONGOLIAN_SELECTORS = {"\u180b", "\u180c", "\u180d", "\u180f"}
GRAPHEME_JOINER = "\u034f"  # a mark that shows nothing: it only keeps others apart
# Scripts whose letters take joiners (ligatures and half-forms); the first word of the
# Unicode names of their letters and signs.
JOINING_SCRIPTS = {
    "ARABIC", "SYRIAC", "NKO", "MONGOLIAN", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI",
    "ORIYA", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA", "KHMER", "MYANMAR",
}  # fmt: skip
# Characters that show nothing, and disappear from a skeleton.
IGNORABLE = VARIATION_SELECTORS | MONGOLIAN_SELECTORS | JOINERS | {GRAPHEME_JOINER}
# The subset of Unicode's confusables (UTS #39) that passes for basic Latin: Cyrillic, Greek,
# then Latin letters and digits. Written out as they are, for the reader to see (hence ruff's
# RUF001 silenced on those lines).
LOOKALIKES = str.maketrans(
    {
        **dict(zip("аԁеһіјӏорԛѕԝхус", "adehijlopqswxyc", strict=True)),  # noqa: RUF001
        **dict(zip("АВЕЅІЈКМНОРСТХУ", "ABESIJKMHOPCTXY", strict=True)),  # noqa: RUF001
        **dict(zip("αικνορυχ", "aikvopux", strict=True)),
        **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX", strict=True)),  # noqa: RUF001
        **dict(zip("ɑɡıɩʟ0I1|", "agiilOlll", strict=True)),  # noqa: RUF001
    }
)
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


def family(char: str) -> str:
    """The first word of a character's Unicode name: its script for letters and most marks."""
    return unicodedata.name(char, "").split(" ", 1)[0]


def is_symbol(char: str) -> bool:
    """An emoji or other symbol (So), or an emoji's skin tone (Sk)."""
    return unicodedata.category(char) in {"So", "Sk"}


def selector_fits(name: str, index: int) -> bool:
    """Whether the glyph selector or joiner at `index` has something to select or join."""
    char, before = name[index], name[index - 1] if index else ""
    after = name[index + 1] if index + 1 < len(name) else ""
    if char in VARIATION_SELECTORS:
        return bool(before) and is_symbol(before)
    if char in MONGOLIAN_SELECTORS:
        return bool(before) and family(before) == "MONGOLIAN"
    if char in JOINERS:
        if not joins_two_characters(name, index):
            return False
        if is_symbol(before) and is_symbol(after):
            return True
        # after a variation selector: an emoji such as 🏳️‍🌈
        if before in VARIATION_SELECTORS and index > 1 and is_symbol(name[index - 2]):
            return is_symbol(after)
        return family(before) in JOINING_SCRIPTS and family(after) in JOINING_SCRIPTS
    return False


def skeleton(name: str) -> str:
    """What the name looks like: two names with the same skeleton render alike (see above)."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(char for char in text if char not in IGNORABLE)
    return unicodedata.normalize("NFD", text.translate(LOOKALIKES).replace("rn", "m"))


def looks_like(name: str, others: Iterable[str]) -> str | None:
    """The first of `others` that `name` could be taken for, other than itself."""
    mine = skeleton(name)
    return next((o for o in others if o != name and skeleton(o) == mine), None)


def check_name(text: str, low: int, high: int) -> str:
    """The name, trimmed and normalised; ValueError("must ...") says what is wrong with it.

    The sentence completes "The name ...", so each caller can name the field it checks."""
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)")
    name = unicodedata.normalize("NFC", text).strip()
    for index, char in enumerate(name):
        if char == GRAPHEME_JOINER:
            raise ValueError("must not contain U+034F, a mark that shows nothing")
        if char in IGNORABLE:
            if selector_fits(name, index):
                continue
            raise ValueError(
                f"must not contain U+{ord(char):04X} there: it selects or joins nothing, so the"
                " name would show as another"
            )
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
    if name != ANNOUNCER and skeleton(name) == skeleton(ANNOUNCER):
        raise ValueError(f"must not look like {ANNOUNCER}, the name of the server's announcements")
    if not low <= len(name) <= high:
        raise ValueError(
            f"must be {low} to {high} characters long once trimmed (it has {len(name)})"
        )
    return name
