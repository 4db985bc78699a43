"""Settings of an annotation campaign served by ``perface annotate serve``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CampaignConfig", "DEFAULT_TITLE", "DEFAULT_INSTRUCTIONS"]

DEFAULT_TITLE = "Which face looks more like the reference face?"
#: Shown before the first triplet (plain text, escaped in the page).
DEFAULT_INSTRUCTIONS = (
    "You will see a reference face in the middle (on a phone: on top) and two faces beside it. "
    "Pick the face that looks more like the reference: the one you would more easily mistake for it. "
    "They are usually different people; judge how similar they look, not whether they are the same person. "
    "There is no right answer, go with your first impression. "
    "Click a face, or press the left arrow or 1 for the left face, the right arrow or 2 for the right face."
)


@dataclass(frozen=True)
class CampaignConfig:
    """Everything :func:`perface.campaign.create_app` needs.

    Attributes:
        tasks: Triplets to judge: CSV or Parquet with ``anchor, a, b`` (root-relative image paths), e.g. the
            output of ``perface triplets sample``. Other columns are ignored.
        root: Dataset root; only images of the tasks, inside this folder (after resolving symbolic links),
            are served.
        db: SQLite campaign database; created on first start, resumed afterwards.
        judgments_per_triplet: K, judgments collected per triplet, each from a different annotator (>= 1).
        gold: Optional gold triplets (``anchor, a, b`` and ``gold_choice`` ``a``/``b``, or ``p_a`` 0 or 1).
        catch_rate: R in [0, 0.5]: one catch trial (a candidate identical to the anchor) in every block of
            ``round(1/R)`` trials of an annotator; 0 turns them off.
        gold_rate: Share of the other trials drawn from the gold triplets (when ``gold`` is given), in [0, 0.5].
        per_annotator: Trials (catch and gold included) in one annotator's session; the completion code comes
            after them, or earlier when no triplet is left for that annotator.
        token: When set, every request (page, API, images) must carry it (``?token=`` or header
            ``X-PerFace-Token``).
        skip_bad: Start even if some task rows have missing / unreadable images (those rows are left out).
        completion_url: Optional link shown with the completion code; ``{code}`` is replaced by the code
            (e.g. a Prolific completion URL).
        assignment_timeout_s: An issued, unanswered assignment stops holding its triplet's slot after this.
        lookahead: Open assignments per annotator: the one shown and the ones preloaded (>= 2).
        frame_ancestors: CSP ``frame-ancestors`` value; ``'none'`` forbids framing (set the MTurk hosts to
            embed the page as an ExternalQuestion).
        allowed_hosts: Host names (``Host`` header, port ignored) answered; empty: any. ``serve`` on loopback
            adds 127.0.0.1, localhost and [::1] (a guard against DNS rebinding).
        title, instructions: Page heading and instructions (plain text).
    """

    tasks: Path
    root: Path
    db: Path
    judgments_per_triplet: int = 3
    gold: Path | None = None
    catch_rate: float = 0.1
    gold_rate: float = 0.1
    per_annotator: int = 50
    token: str | None = None
    skip_bad: bool = False
    completion_url: str | None = None
    assignment_timeout_s: float = 1800.0
    lookahead: int = 2
    frame_ancestors: str = "'none'"
    allowed_hosts: tuple[str, ...] = ()
    title: str = DEFAULT_TITLE
    instructions: str = field(default=DEFAULT_INSTRUCTIONS, repr=False)

    def __post_init__(self):
        for name in ("tasks", "root", "db"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in self.allowed_hosts))
        if self.gold is not None:
            object.__setattr__(self, "gold", Path(self.gold))
        if int(self.judgments_per_triplet) < 1:
            raise ValueError(f"--judgments-per-triplet must be at least 1 (got {self.judgments_per_triplet})")
        for name in ("catch_rate", "gold_rate"):
            value = float(getattr(self, name))
            if not (0.0 <= value <= 0.5) or math.isnan(value):
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 0.5 (got {value:g})")
        if int(self.per_annotator) < 1:
            raise ValueError(f"--per-annotator must be at least 1 (got {self.per_annotator})")
        if int(self.lookahead) < 2:
            raise ValueError(f"lookahead must be at least 2 (got {self.lookahead})")
        if not self.assignment_timeout_s > 0:
            raise ValueError(f"assignment timeout must be positive (got {self.assignment_timeout_s})")
        if self.token is not None and len(self.token) < 8:
            raise ValueError("--token must be at least 8 characters (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(16))')")
        if self.completion_url is not None and not self.completion_url.startswith(("https://", "http://")):
            raise ValueError(f"--completion-url must be an http(s) URL (got {self.completion_url!r})")

    @property
    def catch_block(self) -> int:
        """Trials per catch block (one catch trial each): ``round(1/R)``, 0 when catch trials are off."""
        return 0 if self.catch_rate <= 0 else max(2, round(1.0 / self.catch_rate))
