"""ECMA-262 pattern subset compiled to a character-level DFA, for ``pattern`` and ``format``.

Characters are Unicode code points; a character set is a sorted tuple of disjoint inclusive
intervals ``((lo, hi), ...)``.  Supported: literals and escapes (``\\d \\w \\s \\D \\W \\S
\\t \\n \\r \\f \\v \\0 \\xHH \\uHHHH`` and escaped metacharacters), classes ``[...]`` with ranges
and negation, ``.``, groups ``(...)`` and ``(?:...)``, alternation, the quantifiers
``* + ? {n} {n,} {n,m}`` (and their lazy forms, same language), and ``^``/``$`` at the ends of
top-level alternatives.  Look-around, back-references, word boundaries, flags and Unicode
property escapes raise :class:`~netprism.lm.guided.errors.UnsupportedSchemaError` naming them,
and so does what ECMA-262 and Python's ``re`` (which validators use) read differently: named
groups ``(?<name>...)``, ``{,n}``, and a quantifier right after another (``a?+`` is
possessive in Python, ``a**`` an error in both).

*Generated* strings are a subset of the pattern's language: ``.``, negated classes and the
negated escapes (``\\D \\W \\S``), and the padding around an unanchored pattern (JSON Schema's
``pattern`` is a search, not a full match) draw only from :data:`FREE` (printable ASCII but
``"`` and ``\\``), so free text is never escaped; characters a pattern names explicitly are
kept as written.  Every generated string matches under ECMA-262 and Python ``re`` alike.

The syntax follows ECMA-262 (section 22.2, RegExp), as JSON Schema's ``pattern`` asks; part of
the guided generation of arXiv 2507.13575.
"""

from __future__ import annotations

import re

from netprism.lm.guided.dfa import (
    DFA,
    DIGIT,
    FREE,
    NFA,
    SPACE,
    WORD,
    CharSet,
    any_string,
    determinize,
    intersect,
    intersect_dfa,
    norm,
    subtract,
)
from netprism.lm.guided.errors import UnsupportedSchemaError

__all__ = [
    "DFA",
    "FORMATS",
    "FREE",
    "CharSet",
    "any_string",
    "compile_format",
    "compile_pattern",
    "intersect",
    "intersect_dfa",
]

# ---------------------------------------------------------------- parser -> AST
# AST: ("set", CharSet) | ("cat", [ast]) | ("alt", [ast]) | ("rep", ast, lo, hi|None) | ("bol",)
# | ("eol",)
_ESC_SETS = {"d": DIGIT, "w": WORD, "s": SPACE}
_ESC_CHARS = {"t": 9, "n": 10, "v": 11, "f": 12, "r": 13, "0": 0}


class _Parser:
    def __init__(self, pattern: str, path: str) -> None:
        self.p, self.i, self.path = pattern, 0, path

    def fail(self, what: str) -> UnsupportedSchemaError:
        return UnsupportedSchemaError(
            f"'pattern' {self.p!r} at {self.path}: {what} (at offset {self.i}) is not supported"
        )

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def parse(self) -> tuple:
        ast = self.alt()
        if self.i < len(self.p):
            raise self.fail(f"unbalanced {self.peek()!r}")
        return ast

    def alt(self) -> tuple:
        branches = [self.cat()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.cat())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def cat(self) -> tuple:
        items: list[tuple] = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        return ("cat", items)

    def quantified(self, atom: tuple) -> tuple:
        bounds = self._quantifier()
        if bounds is None:
            return atom
        if atom[0] in ("bol", "eol"):
            raise self.fail("a quantified anchor")
        if self.peek() == "?":  # lazy: same language
            self.i += 1
        if self._quantifier() is not None:
            raise self.fail("a quantifier after a quantifier")
        return ("rep", atom, *bounds)

    def _quantifier(self) -> tuple[int, int | None] | None:
        """The bounds of the quantifier here (consumed), or None."""
        c = self.peek()
        if c in ("*", "+", "?"):
            self.i += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        if c == "{" and re.match(r"\{,[0-9]*\}", self.p[self.i :]):
            raise self.fail("quantifier {,n} (literal in ECMA-262, {0,n} in Python)")
        bounds = self._brace() if c == "{" else None
        if bounds is not None:
            self.i = self.p.index("}", self.i) + 1
        return bounds

    def _brace(self) -> tuple[int, int | None] | None:
        end = self.p.find("}", self.i)
        body = self.p[self.i + 1 : end] if end > 0 else ""
        lo, _, hi = body.partition(",")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return None
        n = int(lo)
        m = n if "," not in body else (int(hi) if hi else None)
        if m is not None and m < n:
            raise self.fail(f"quantifier {{{body}}} out of order")
        return n, m

    def atom(self) -> tuple:
        c = self.peek()
        self.i += 1
        if c == "(":
            return self.group()
        if c == "[":
            return ("set", self.cls())
        if c == ".":
            return ("set", FREE)
        if c == "^":
            return ("bol",)
        if c == "$":
            return ("eol",)
        if c == "\\":
            return ("set", self.escape(in_class=False))
        if c in "*+?" or (c == "{" and self._brace_at(self.i - 1)):
            raise self.fail(f"nothing to repeat before {c!r}")
        return ("set", ((ord(c), ord(c)),))

    def _brace_at(self, i: int) -> bool:
        save, self.i = self.i, i
        try:
            return self._brace() is not None
        finally:
            self.i = save

    def group(self) -> tuple:
        if self.p.startswith("?:", self.i):
            self.i += 2
        elif self.peek() == "?":
            kinds = {"?=": "look-ahead", "?!": "look-ahead", "?<=": "look-behind"}
            kinds |= {"?<!": "look-behind", "?<": "named group (Python's re writes (?P<name>)"}
            name = next((v for k, v in kinds.items() if self.p.startswith(k, self.i)), None)
            raise self.fail(name or "group flag or extension '(?'")
        inner = self.alt()
        if self.peek() != ")":
            raise self.fail("unclosed group")
        self.i += 1
        return inner

    def escape(self, in_class: bool) -> CharSet:
        c = self.peek()
        self.i += 1
        if c == "":
            raise self.fail("trailing backslash")
        if c.lower() in _ESC_SETS:
            s = _ESC_SETS[c.lower()]
            return subtract(FREE, s) if c.isupper() else s
        if c in _ESC_CHARS and not (c == "0" and self.peek().isdigit()):
            return ((_ESC_CHARS[c],) * 2,)
        if c in "xu":
            n = 2 if c == "x" else 4
            digits = self.p[self.i : self.i + n]
            if len(digits) != n or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail(f"malformed escape \\{c}")
            self.i += n
            return norm([(int(digits, 16),) * 2])  # a lone surrogate: no character
        if c.isdigit() or c == "k":
            raise self.fail("back-reference")
        if c in "bB" and not in_class:
            raise self.fail("word boundary \\" + c)
        if c == "b":
            return ((8, 8),)
        if c.isalnum():
            raise self.fail(f"escape \\{c}")
        return ((ord(c), ord(c)),)

    def cls(self) -> CharSet:
        neg = self.peek() == "^"
        self.i += neg
        ivs: list[tuple[int, int]] = []
        first = True
        while self.peek() != "]" or first:
            if self.peek() == "":
                raise self.fail("unclosed class")
            first = False
            lo = self.cls_atom()
            if self.peek() == "-" and self.p[self.i + 1 : self.i + 2] not in ("]", ""):
                self.i += 1
                hi = self.cls_atom()
                if len(lo) != 1 or len(hi) != 1 or lo[0][0] != lo[0][1] or hi[0][0] != hi[0][1]:
                    raise self.fail("class range with a class escape")
                if hi[0][0] < lo[0][0]:
                    raise self.fail("class range out of order")
                ivs.append((lo[0][0], hi[0][0]))
            else:
                ivs.extend(lo)
        self.i += 1
        s = norm(ivs)
        return subtract(FREE, s) if neg else s

    def cls_atom(self) -> CharSet:
        c = self.peek()
        self.i += 1
        if c == "\\":
            return self.escape(in_class=True)
        if c == "[" and self.peek() in ":=.":
            raise self.fail("POSIX class")
        return ((ord(c), ord(c)),)


def _strip_anchors(ast: tuple, path: str, pattern: str) -> tuple:
    """Full-match AST: each top-level alternative padded with FREE* where it is unanchored."""
    branches = ast[1] if ast[0] == "alt" else [ast]
    out = []
    for b in branches:
        items = list(b[1]) if b[0] == "cat" else [b]
        head = bool(items) and items[0] == ("bol",)
        tail = bool(items) and items[-1] == ("eol",)
        items = items[head : len(items) - tail if len(items) > head else len(items)]
        _no_anchor(items, path, pattern)
        pad = ("rep", ("set", FREE), 0, None)
        out.append(("cat", ([] if head else [pad]) + items + ([] if tail else [pad])))
    return ("alt", out)


def _no_anchor(items: list[tuple], path: str, pattern: str) -> None:
    for it in items:
        if it[0] in ("bol", "eol"):
            raise UnsupportedSchemaError(
                f"'pattern' {pattern!r} at {path}: an anchor inside the pattern is not supported"
            )
        if it[0] in ("cat", "alt"):
            _no_anchor(list(it[1]), path, pattern)
        if it[0] == "rep":
            _no_anchor([it[1]], path, pattern)


def compile_pattern(pattern: str, path: str = "$", *, anchored: bool = False) -> DFA:
    """DFA of the strings matching ``pattern`` (a search unless ``anchored``), see module doc."""
    if not isinstance(pattern, str):
        raise UnsupportedSchemaError(f"'pattern' at {path} must be a string, got {pattern!r}")
    ast = _Parser(pattern, path).parse()
    ast = ("cat", [ast]) if anchored else _strip_anchors(ast, path, pattern)
    if anchored:
        _no_anchor([ast], path, pattern)
    nfa = NFA()
    try:
        s, e = nfa.build(ast)
        return determinize(nfa, s, e)
    except UnsupportedSchemaError as error:  # a size limit: name the pattern and where
        raise UnsupportedSchemaError(f"'pattern' {pattern!r:.80} at {path}: {error}") from None


# ---------------------------------------------------------------- formats (exact subsets)
_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_DAYS = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = _YEAR + "-" + _DAYS
_TIME = (
    "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
    "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HEX = "[0-9a-f]"
FORMATS = {
    "date": _DATE,  # February stops at the 28th: leap years are not tracked
    "time": _TIME,  # no leap second
    "date-time": _DATE + "T" + _TIME,
    "email": "[a-z0-9]{1,16}(?:[._+-][a-z0-9]{1,16}){0,2}@(?:[a-z0-9]{1,20}(?:-[a-z0-9]{1,20})?"
    "\\.){1,3}[a-z]{2,10}",
    "uuid": f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",
    "ipv4": f"{_OCTET}(?:\\.{_OCTET}){{3}}",
}


def compile_format(name: str, path: str) -> DFA:
    """DFA of a subset of the strings in format ``name`` (see :data:`FORMATS`)."""
    if not isinstance(name, str) or name not in FORMATS:
        raise UnsupportedSchemaError(
            f"unsupported keyword value 'format'={name!r} at {path}; supported: {sorted(FORMATS)}"
        )
    return compile_pattern(FORMATS[name], path, anchored=True)
