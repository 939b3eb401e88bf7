"""Who is calling: the ``Principal`` and the vocabularies of rank, classification and scope it is made of."""

from __future__ import annotations

from dataclasses import dataclass

RANKS: tuple[str, ...] = (
    "constable",
    "sergeant",
    "inspector",
    "chief_inspector",
    "superintendent",
    "chief_superintendent",
    "assistant_chief_constable",
    "deputy_chief_constable",
    "chief_constable",
)
"""Police ranks from lowest to highest; detective ranks ("DC", "DCI") carry the same authority."""

RANK_ALIASES: dict[str, str] = {
    "commander": "assistant_chief_constable",
    "deputy_assistant_commissioner": "deputy_chief_constable",
    "assistant_commissioner": "chief_constable",
    "commissioner": "chief_constable",
    "detective_constable": "constable",
    "detective_sergeant": "sergeant",
    "detective_inspector": "inspector",
    "detective_chief_inspector": "chief_inspector",
    "detective_superintendent": "superintendent",
    "detective_chief_superintendent": "chief_superintendent",
    "pc": "constable",
    "dc": "constable",
    "ps": "sergeant",
    "ds": "sergeant",
    "insp": "inspector",
    "di": "inspector",
    "ci": "chief_inspector",
    "dci": "chief_inspector",
    "supt": "superintendent",
    "dsupt": "superintendent",
    "ch_supt": "chief_superintendent",
    "dcs": "chief_superintendent",
    "acc": "assistant_chief_constable",
    "cmdr": "assistant_chief_constable",
    "dcc": "deputy_chief_constable",
    "dac": "deputy_chief_constable",
    "cc": "chief_constable",
    "ac": "chief_constable",
}
"""Metropolitan Police titles, detective titles and the usual abbreviations, mapped onto the rank of
equal authority."""

CLASSIFICATIONS: tuple[str, ...] = ("OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET", "TOP SECRET")
"""Government Security Classifications from lowest to highest, in their canonical spelling."""

SCOPES: frozenset[str] = frozenset(
    {
        "tasks:read",
        "tasks:write",
        "instances:read",
        "instances:write",
        "instances:migrate",
        "instances:erase",
        "approvals:decide",
        "definitions:deploy",
        "audit:read",
        "messages:send",
        "admin",
    }
)
"""Every OAuth scope the opsflow API understands."""


def _words(value: str) -> str:
    return "_".join(value.strip().lower().replace("-", " ").replace("_", " ").replace(".", " ").split())


def normalise_rank(value: str) -> str:
    """Return the canonical rank for a spelling such as "Chief Inspector", "chief-inspector" or "Commander".

    Raises ``ValueError`` for a value that is not a rank.
    """
    word = _words(value)
    rank = RANK_ALIASES.get(word, word)
    if rank not in RANKS:
        raise ValueError(f"{value!r} is not a known rank")
    return rank


def rank_level(rank: str) -> int:
    """Position of a rank (any accepted spelling) in ``RANKS``; higher means more authority."""
    return RANKS.index(normalise_rank(rank))


def normalise_classification(value: str) -> str:
    """Return the canonical marking for spellings such as "official_sensitive" or "top-secret".

    Raises ``ValueError`` for a value that is not a classification.
    """
    word = _words(value)
    for marking in CLASSIFICATIONS:
        if _words(marking) == word:
            return marking
    raise ValueError(f"{value!r} is not a known security classification")


def classification_level(classification: str) -> int:
    """Position of a classification (any accepted spelling) in ``CLASSIFICATIONS``."""
    return CLASSIFICATIONS.index(normalise_classification(classification))


@dataclass(frozen=True)
class Principal:
    """The authenticated caller as the API sees it: a person, or a system using client credentials.

    ``rank`` and ``clearance`` are canonical (see ``normalise_rank``/``normalise_classification``);
    ``subject`` is the stable identifier to record in audit trails and to compare for separation of
    duties, never ``name``.
    """

    subject: str
    name: str
    roles: frozenset[str]
    units: frozenset[str]
    rank: str | None
    clearance: str
    scopes: frozenset[str]
    client_id: str | None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def rank_at_least(self, rank: str) -> bool:
        """True when the caller holds ``rank`` or a higher one; a caller without a rank holds none."""
        return self.rank is not None and rank_level(self.rank) >= rank_level(rank)

    def cleared_for(self, classification: str) -> bool:
        """True when the caller's clearance is at least ``classification``."""
        return classification_level(self.clearance) >= classification_level(classification)
