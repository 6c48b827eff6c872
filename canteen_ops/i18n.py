"""Messages in the technician's language: English by default, Chinese from a gettext catalog.

The language is `--lang` if given, else the first of LC_ALL, LC_MESSAGES, LANG that is set (the POSIX order):
`zh…` means Chinese. Only our own words are translated; data (school names, areas, device ids, what a device
said) never is. The catalog is canteen_ops/locale/zh_CN/LC_MESSAGES/canteen_ops.po, compiled to the .mo
next to it by `python -m canteen_ops.locale.msgfmt` (tests check the two agree).
"""

from __future__ import annotations

import gettext
import os
from pathlib import Path

DOMAIN = "canteen_ops"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGS = ("en", "zh")

_forced: str | None = None
_cache: dict[str, gettext.NullTranslations] = {}


def set_language(lang: str | None) -> None:
    """Force a language for this process (`--lang`); None goes back to the environment."""
    global _forced
    if lang is not None and lang not in LANGS:
        raise ValueError(f"expected one of {', '.join(LANGS)}")
    _forced = lang


def language() -> str:
    if _forced:
        return _forced
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def speak_to_libraries() -> None:
    """Messages that libraries write through the standard gettext functions (Click's usage errors: "No such
    option", "Missing argument", "Usage:") come from our catalog, in our language: the process's text domain is
    bound to the catalog, and LANGUAGE (GNU gettext's message-language variable, read before LC_ALL and LANG)
    names the language. The caller restores LANGUAGE when the command ends."""
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = "zh_CN" if language() == "zh" else "en"


def translations(lang: str | None = None) -> gettext.NullTranslations:
    lang = lang or language()
    if lang not in _cache:
        if lang == "zh":
            _cache[lang] = gettext.translation(DOMAIN, LOCALE_DIR, languages=["zh_CN"], fallback=True)
        else:
            _cache[lang] = gettext.NullTranslations()
    return _cache[lang]


def _(message: str) -> str:
    return translations().gettext(message) if message else message  # ("" would give the catalog's header)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations().ngettext(singular, plural, n)


def status_word(status: str, *, upper: bool = False) -> str:
    """ok/warn/crit/unknown/n/a in the technician's language (CRIT in English tables, 严重 in Chinese)."""
    word = _(f"status:{status}")
    if word.startswith("status:"):
        word = status
    return word.upper() if upper and language() == "en" else word


def word(key: str) -> str:
    """A short word kept apart in the catalog by a `context:` prefix (`watch:opened` → 新开, while a table's
    `opened` header is 报告时间); without a translation, the word after the prefix."""
    text = _(key)
    return key.split(":", 1)[1] if text == key else text


def check_word(check: str) -> str:
    """A check's name for a reader of the report (时钟偏差 for `clock`); the name itself where none is known."""
    return word(f"check:{check}")


def zh(message: str) -> str:
    """The Chinese form of a message whatever the current language (headers of `--lang zh` exports)."""
    return translations("zh").gettext(message) if message else message
