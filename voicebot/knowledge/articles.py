"""Knowledge-base articles: Markdown files with YAML front matter, parsed and checked with file:line errors.

    knowledge/<collection>/<lang>/<slug>.md      (collection: an industry, e.g. education)

    ---
    id: edu-refund-policy
    title: Course refund policy
    tags: [refunds, fees]
    lang: en
    valid_from: 2026-01-01
    valid_until: 2027-12-31
    owner: registrar@brightfuture.example
    version: 3
    short_answer: >-
      You get a full refund up to 7 days before your course starts. After that, the share goes down week by week.
    questions: [can I get my money back for a course]   # optional: how callers ask (helps retrieval)
    ---
    The full text, read on request ("more") and shown to agents.

`short_answer` is what the bot speaks: written for the ear, a short sentence first. Pure parsing: `parse_article`
takes the text; only `read_article` touches the disk.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voicebot.yamlsrc import ConfigErrors, LocatedValueError, YamlSourceError, load_yaml_text, validate

__all__ = [
    "Article",
    "ArticleMeta",
    "FIRST_SENTENCE_MAX",
    "first_sentence",
    "parse_article",
    "read_article",
    "speakable",
]

LANGS = ("en", "zh")
FIRST_SENTENCE_MAX = {"en": 20, "zh": 30}  # words (en) / characters (zh) of the short answer's first sentence
SHORT_ANSWER_MAX = {"en": 60, "zh": 120}
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])")
_MARKDOWN = re.compile(r"[*_`#\[\]|>]")


class ArticleMeta(BaseModel):
    """The front matter of one article."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=80,
                    description="unique across the knowledge base, e.g. edu-refund-policy")
    title: str = Field(min_length=1, max_length=120)
    tags: list[str] = Field(min_length=1, description="topics the dialplan's answer: and searches filter on")
    lang: str = Field(description="en or zh (en-US, zh-CN are accepted)")
    valid_from: dt.date | None = Field(None, description="first day the article may be used")
    valid_until: dt.date | None = Field(None, description="last day the article may be used")
    owner: str = Field(min_length=1, description="who keeps it right: a team or an e-mail")
    version: int = Field(ge=1, description="raise it with every change; call records keep it")
    short_answer: str = Field(description="what the bot speaks: a short sentence first, no Markdown")
    questions: list[str] = Field(default_factory=list, description="how callers ask it (retrieval examples)")

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str) -> str:
        primary = value.split("-")[0].lower()
        if primary not in LANGS:
            raise LocatedValueError(f"language {value!r} is not supported", hint="write lang: en or lang: zh")
        return primary

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", tag):
                raise LocatedValueError(f"tag {tag!r} is not a lower-case word",
                                        hint="tags look like refunds or baggage_delay")
        return value


@dataclass(frozen=True)
class Article:
    """One validated article; `line` is where each front-matter field starts (for later checks' errors)."""

    meta: ArticleMeta
    body: str
    path: str
    collection: str
    lines: dict[str, int]
    body_line: int = 1  # the file line the body starts on

    @property
    def id(self) -> str:
        return self.meta.id

    def valid_on(self, day: dt.date) -> bool:
        meta = self.meta
        return (meta.valid_from is None or meta.valid_from <= day) and (meta.valid_until is None
                                                                         or day <= meta.valid_until)

    def more(self) -> str:
        """The body as speakable text (the 'more detail' the bot reads on request)."""
        return speakable(self.body)

    def line_of(self, field: str) -> int:
        return self.lines.get(field, 1)


def first_sentence(text: str) -> str:
    parts = [part for part in _SENTENCE.split(text.strip()) if part.strip()]
    return parts[0].strip() if parts else ""


def _length(text: str, lang: str) -> int:
    return len(re.findall(r"[\u3400-\u9fff]|[A-Za-z0-9]", text)) if lang == "zh" else len(text.split())


def speakable(markdown: str) -> str:
    """Markdown reduced to what a voice can say: headings, list marks, emphasis and links' targets dropped."""
    lines = []
    for line in markdown.splitlines():
        line = re.sub(r"^\s*(#+|[-*+]|\d+\.)\s+", "", line)
        line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)
        line = _MARKDOWN.sub("", line).strip()
        if line:
            lines.append(line if re.search(r"[.!?。！？：:；;]$", line) else line + ("。" if re.search(
                r"[\u3400-\u9fff]$", line) else "."))
    return " ".join(lines)


def _ear_problems(meta: ArticleMeta) -> list[tuple[str, str]]:
    """(message, fix) when the short answer is not written for the ear."""
    text = meta.short_answer.strip()
    if not text:
        return [("short_answer is empty", "write one or two short spoken sentences")]
    problems = []
    if _MARKDOWN.search(text):
        problems.append(("short_answer contains Markdown (it is spoken)", "write plain words, no *, #, [ ] or |"))
    first = first_sentence(text)
    limit = FIRST_SENTENCE_MAX[meta.lang]
    unit = "characters" if meta.lang == "zh" else "words"
    if _length(first, meta.lang) > limit:
        problems.append((f"short_answer's first sentence has {_length(first, meta.lang)} {unit} "
                         f"(more than {limit})", "start with a short sentence that answers; details after it"))
    total = SHORT_ANSWER_MAX[meta.lang]
    if _length(text, meta.lang) > total:
        problems.append((f"short_answer has {_length(text, meta.lang)} {unit} (more than {total})",
                         "keep the spoken answer short; move details to the body (read on 'more')"))
    return problems


def parse_article(text: str, path: str, collection: str) -> Article:
    """One article from its file text; raises ConfigErrors (each problem at path:line with the fix)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise ConfigErrors([YamlSourceError(path, 1, 1, "an article starts with front matter between '---' lines",
                                            "begin the file with ---, the fields id, title, tags, lang, owner, "
                                            "version, short_answer, then ---")])
    end = next((index for index in range(1, len(lines)) if lines[index].strip() == "---"), None)
    if end is None:
        raise ConfigErrors([YamlSourceError(path, 1, 1, "the front matter is not closed",
                                            "add a line with --- after the last field")])
    # Blank lines in front keep the YAML's line numbers those of the file.
    data, line_map = load_yaml_text("\n" + "\n".join(lines[1:end]), path)
    if not isinstance(data, dict):
        raise ConfigErrors([YamlSourceError(path, 2, 1, "the front matter must be a mapping of fields",
                                            "write field: value lines, e.g. id: my-article")])
    if "short_answer" not in data:
        raise ConfigErrors([YamlSourceError(path, end + 1, None, "the article has no short_answer",
                                            "add short_answer: the spoken answer, a short sentence first")])
    meta = validate(ArticleMeta, data, line_map, path)
    field_lines = {str(key): line_map.line_for((key,))[0] for key in data}
    errors = []
    for message, fix in _ear_problems(meta):
        errors.append(YamlSourceError(path, field_lines.get("short_answer"), None, message, fix))
    if meta.valid_from and meta.valid_until and meta.valid_until < meta.valid_from:
        errors.append(YamlSourceError(path, field_lines.get("valid_until"), None,
                                      f"valid_until {meta.valid_until} is before valid_from {meta.valid_from}",
                                      "swap the dates or fix the year"))
    folder_lang = Path(path).parent.name.split("-")[0]
    if folder_lang in LANGS and folder_lang != meta.lang:
        errors.append(YamlSourceError(path, field_lines.get("lang"), None,
                                      f"lang {meta.lang!r} in the {folder_lang!r} folder",
                                      f"move the file to {collection}/{meta.lang}/ or fix lang"))
    body_lines = lines[end + 1:]
    skipped = next((i for i, line in enumerate(body_lines) if line.strip()), 0)
    body = "\n".join(body_lines).strip()
    if not body:
        errors.append(YamlSourceError(path, end + 1, None, "the article has no body",
                                      "write the full answer below the front matter (read on 'more')"))
    if errors:
        raise ConfigErrors(errors)
    return Article(meta, body, path, collection, field_lines, end + 2 + skipped)


def read_article(path: Path, collection: str) -> Article:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([YamlSourceError(str(path), None, None, f"cannot read the article: {exc}",
                                            "save it as UTF-8 text")]) from None
    return parse_article(text, str(path), collection)


def describe(article: Article) -> dict[str, Any]:
    """A JSON-able summary (API, CLI)."""
    meta = article.meta
    return {"id": meta.id, "title": meta.title, "tags": meta.tags, "lang": meta.lang, "version": meta.version,
            "collection": article.collection, "owner": meta.owner, "short_answer": meta.short_answer,
            "valid_from": meta.valid_from.isoformat() if meta.valid_from else None,
            "valid_until": meta.valid_until.isoformat() if meta.valid_until else None}
