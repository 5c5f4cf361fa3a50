"""``ListBatchPredictionJobsRequest.filter``, as its reference documents it: parsed into one predicate over jobs.

The grammar is Google's list-filter grammar (AIP-160), the part the reference uses::

    expression  = sequence {"AND" sequence}
    sequence    = factor {factor}              (juxtaposition is AND)
    factor      = term {"OR" term}             (OR binds tighter than AND, as in AIP-160)
    term        = ["NOT" | "-"] simple
    simple      = "(" expression ")" | field comparator value
    comparator  = "=" | "!=" | "<" | "<=" | ">" | ">=" | ":"
    value       = quoted string | bare word (up to a space or parenthesis) | "*"

Fields: ``display_name`` (``=``, ``!=``, ``:`` with ``*`` wildcards), ``model_display_name`` (``=``, ``!=``),
``state`` (``=``, ``!=``, a ``JOB_STATE_*`` name), ``create_time`` (every comparison, RFC 3339) and
``labels.KEY`` (``=``, ``!=``, ``:``; ``labels.KEY:*`` is "has the label"). Anything else is refused with
INVALID_ARGUMENT naming the position, so a typo never silently lists every job.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

import grpc
from google.cloud import aiplatform_v1

from airflow_provider_video_actions.emulator.errors import AbortError

Job = aiplatform_v1.BatchPredictionJob
Predicate = Callable[[Job], bool]
#: The display name of the model a job names (the job service resolves it from its catalog).
ModelDisplayName = Callable[[str], str]

_COMPARATORS = ("<=", ">=", "!=", "=", "<", ">", ":")
_ORDERINGS: dict[str, Callable[[datetime, datetime], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)?")
_BARE_VALUE = re.compile(r"[^\s()\"']+")
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
#: How deep parentheses and negations may nest.
MAX_NESTING = 32
_FILTERABLE = "display_name, model_display_name, state, create_time, labels.KEY"


def parse_filter(text: str, model_display_name: ModelDisplayName) -> Predicate:
    """The predicate a filter string selects jobs by (every job for an empty filter); INVALID_ARGUMENT if refused."""
    return _Parser(text, model_display_name).parse()


def wildcard_match(pattern: str, value: str) -> bool:
    """Whether ``value`` matches ``pattern``, where ``*`` stands for any run of characters (the ``:`` operator)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), value, re.DOTALL) is not None


class _Parser:
    """A recursive-descent parser over the filter text; each method consumes one grammar rule."""

    def __init__(self, text: str, model_display_name: ModelDisplayName) -> None:
        """Start at the first character."""
        self.text, self.position, self.model_display_name = text, 0, model_display_name
        self.depth = 0

    def parse(self) -> Predicate:
        """The whole filter: an expression, then nothing."""
        if not self.text.strip():
            return lambda job: True
        predicate = self._expression()
        self._skip_spaces()
        if self.position < len(self.text):
            self._refuse(f"unexpected {self._rest()!r}")
        return predicate

    def _expression(self) -> Predicate:
        """Sequences joined by AND."""
        parts = [self._sequence()]
        while self._keyword("AND"):
            parts.append(self._sequence())
        return _all_of(parts)

    def _sequence(self) -> Predicate:
        """Factors side by side (an implicit AND), up to AND, a closing parenthesis or the end."""
        parts = [self._factor()]
        while not self._at_end() and not self._peek_keyword("AND") and not self._peek(")"):
            parts.append(self._factor())
        return _all_of(parts)

    def _factor(self) -> Predicate:
        """Terms joined by OR."""
        parts = [self._term()]
        while self._keyword("OR"):
            parts.append(self._term())
        return lambda job: any(part(job) for part in parts)

    def _term(self) -> Predicate:
        """A simple term, negated by a leading NOT or ``-``."""
        if self._keyword("NOT") or self._symbol("-"):
            inner = self._nested(self._term)
            return lambda job: not inner(job)
        return self._simple()

    def _simple(self) -> Predicate:
        """A parenthesised expression or one restriction."""
        if self._symbol("("):
            inner = self._nested(self._expression)
            if not self._symbol(")"):
                self._refuse("expected ')'")
            return inner
        return self._restriction()

    def _nested(self, rule: Callable[[], Predicate]) -> Predicate:
        """One nested rule (inside parentheses or a negation); deeper than :data:`MAX_NESTING` is refused, so a
        hostile filter cannot exhaust the stack."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            self._refuse(f"nested deeper than {MAX_NESTING} levels")
        try:
            return rule()
        finally:
            self.depth -= 1

    def _restriction(self) -> Predicate:
        """``field comparator value``, checked against what the field supports."""
        start = self._skip_spaces()
        match = _FIELD.match(self.text, start)
        if match is None or match.group() in _KEYWORDS:
            self._refuse(f"expected a field ({_FILTERABLE}) or '('")
        field, self.position = match.group(), match.end()
        comparator = self._comparator(field)
        value_at = self._skip_spaces()
        value = self._value(field, comparator)
        return self._checked(field, comparator, value, start, value_at)

    def _checked(self, field: str, comparator: str, value: str, start: int, value_at: int) -> Predicate:
        """The predicate of one restriction, or INVALID_ARGUMENT for a field or operator the reference does not list."""
        if field == "state":
            return self._state(comparator, value, start, value_at)
        if field in ("display_name", "model_display_name"):
            allowed = ("=", "!=", ":") if field == "display_name" else ("=", "!=")
            self._require_comparator(field, comparator, allowed, start)
            read = (lambda job: job.display_name) if field == "display_name" else self._model_name
            return _string_test(read, comparator, value)
        if field == "create_time":
            when = self._timestamp(value, value_at)
            self._require_comparator(field, comparator, tuple(_ORDERINGS), start)
            compare = _ORDERINGS[comparator]
            return lambda job: compare(job.create_time, when)
        if field.startswith("labels."):
            key = field.removeprefix("labels.")
            self._require_comparator(field, comparator, ("=", "!=", ":"), start)
            return _string_test(lambda job: job.labels.get(key), comparator, value)
        return self._refuse(f"field {field!r} cannot be filtered on; the filterable fields are {_FILTERABLE}", at=start)

    def _model_name(self, job: Job) -> str:
        """The display name of the job's model."""
        return self.model_display_name(job.model)

    def _state(self, comparator: str, value: str, start: int, value_at: int) -> Predicate:
        """``state = / != JOB_STATE_X``."""
        self._require_comparator("state", comparator, ("=", "!="), start)
        if value not in aiplatform_v1.JobState.__members__:
            self._refuse(f"{value!r} is not a job state (JOB_STATE_SUCCEEDED, JOB_STATE_FAILED...)", at=value_at)
        state, equal = aiplatform_v1.JobState[value], comparator == "="
        return lambda job: (job.state == state) == equal

    def _timestamp(self, value: str, at: int) -> datetime:
        """An RFC 3339 timestamp with a zone (``2021-05-18T00:00:00Z``)."""
        try:
            when = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None or "T" not in value.upper():
            self._refuse(f"{value!r} is not an RFC 3339 timestamp such as 2021-05-18T00:00:00Z", at=at)
        return when

    def _require_comparator(self, field: str, comparator: str, allowed: tuple[str, ...], at: int) -> None:
        """Refuse an operator the field does not support."""
        if comparator not in allowed:
            self._refuse(f"{field} supports {', '.join(allowed)}, not {comparator!r}", at=at)

    def _comparator(self, field: str) -> str:
        """The operator after a field."""
        self._skip_spaces()
        for comparator in _COMPARATORS:
            if self.text.startswith(comparator, self.position):
                self.position += len(comparator)
                return comparator
        return self._refuse(f"expected an operator ({' '.join(_COMPARATORS)}) after {field!r}")

    def _value(self, field: str, comparator: str) -> str:
        """A quoted string (``\\`` escapes the next character) or a bare word."""
        if self.position < len(self.text) and self.text[self.position] in "\"'":
            return self._quoted()
        match = _BARE_VALUE.match(self.text, self.position)
        if match is None:
            self._refuse(f"expected a value after {field}{comparator}")
        self.position = match.end()
        return match.group()

    def _quoted(self) -> str:
        """The string between matching quotes, unescaped."""
        quote, start = self.text[self.position], self.position
        self.position += 1
        chars = []
        while self.position < len(self.text) and self.text[self.position] != quote:
            if self.text[self.position] == "\\":
                self.position += 1
            chars.append(self.text[self.position : self.position + 1])
            self.position += 1
        if self.position >= len(self.text):
            self._refuse("unterminated string", at=start)
        self.position += 1
        return "".join(chars)

    def _keyword(self, word: str) -> bool:
        """Consume ``word`` (a whole word) if it comes next."""
        if self._peek_keyword(word):
            self.position += len(word)
            return True
        return False

    def _peek_keyword(self, word: str) -> bool:
        """Whether ``word`` comes next as a whole word (``ANDROID`` is not ``AND``)."""
        self._skip_spaces()
        end = self.position + len(word)
        return self.text.startswith(word, self.position) and (end == len(self.text) or not _word_char(self.text[end]))

    def _symbol(self, symbol: str) -> bool:
        """Consume ``symbol`` if it comes next."""
        if self._peek(symbol):
            self.position += len(symbol)
            return True
        return False

    def _peek(self, symbol: str) -> bool:
        """Whether ``symbol`` comes next."""
        self._skip_spaces()
        return self.text.startswith(symbol, self.position)

    def _at_end(self) -> bool:
        """Whether only spaces remain."""
        self._skip_spaces()
        return self.position >= len(self.text)

    def _skip_spaces(self) -> int:
        """Move past whitespace; return the new position."""
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1
        return self.position

    def _rest(self) -> str:
        """A short piece of the text from the current position, for messages."""
        return self.text[self.position : self.position + 20]

    def _refuse(self, why: str, at: int | None = None) -> NoReturn:
        """INVALID_ARGUMENT naming the position (0-based character index) and why."""
        position = self.position if at is None else at
        raise AbortError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Invalid filter {self.text!r}: {why} at position {position}",
        )


def _word_char(char: str) -> bool:
    """Whether a character continues a word (so ``AND`` is not a prefix of ``ANDROID``)."""
    return char.isalnum() or char in "_.-"


def _all_of(parts: list[Predicate]) -> Predicate:
    """The conjunction of predicates (the one predicate itself when alone)."""
    return parts[0] if len(parts) == 1 else lambda job: all(part(job) for part in parts)


def _string_test(read: Callable[[Job], str | None], comparator: str, value: str) -> Predicate:
    """``=``, ``!=`` or ``:`` (wildcard match; an absent value never matches) against a string the job holds."""
    if comparator == ":":
        return lambda job: (found := read(job)) is not None and wildcard_match(value, found)
    equal = comparator == "="
    return lambda job: (read(job) == value) == equal
