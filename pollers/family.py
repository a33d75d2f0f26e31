"""How a backend module declares its family: the one place that names its variants.

Each backend module (``pollers/<name>_poller.py``) defines a module-level
``FAMILY = Family(...)``. The registry collects those declarations, and
everything that lists families, options or variants reads them from there:
`pollers.create`, `pollers.variants`, the command line's ``--poller`` choices,
option flags and ``--help``, the test parametrization and ``POLLERS_FAMILIES``,
the benchmark targets, and the variant table in ``docs/contract.md``.

A family whose loop an application can own (asyncio, Tornado, Twisted, gevent)
also declares how to attach a poller to such a loop (``attach``) and the
attached variants the test suite runs (``attached_variants``); `pollers.attach`
walks the families in order and takes the first that recognizes the host.

A declaration must be cheap to import: the backend module imports its
third-party library (Tornado, uvloop, ...) only inside ``factory`` and
``unavailable_reason``, so that ``import pollers`` imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Optional, Tuple

if TYPE_CHECKING:
    from .base import Poller


@dataclass(frozen=True)
class Option:
    """A keyword option of a family (``selector=``, ``loop=``), also a command-line flag."""

    name: str
    choices: Tuple[str, ...]
    default: str
    #: What it picks, for ``--help`` ("selector", "event loop").
    help: str


@dataclass(frozen=True)
class VariantSpec:
    """One variant as declared: the family with every option fixed."""

    #: The variant's name, also its test id and benchmark target (``selectors-epoll``).
    name: str
    options: Mapping[str, str]
    #: Where it runs, for the docs' variant table ("Linux", "CPython with uvloop").
    runs_on: str
    #: The lowest descriptor number it refuses at ``register`` (select(2)'s
    #: ``FD_SETSIZE``), or None if it takes any (the contract's behaviour 8).
    descriptor_limit: Optional[int] = None


def attached_forms(variants: Iterable[VariantSpec]) -> Tuple[VariantSpec, ...]:
    """Each of ``variants`` as an attached variant (``Family.attached_variants``): named
    ``<name>-attached``, with the same options (those of the host loop it stands for),
    platforms and descriptor limit."""
    return tuple(replace(variant, name=f"{variant.name}-attached") for variant in variants)


@dataclass(frozen=True)
class Family:
    """A backend family: its name, options, variants, availability and factory."""

    name: str
    #: One line for the docs and ``--help``.
    summary: str
    options: Tuple[Option, ...]
    variants: Tuple[VariantSpec, ...]
    #: ``factory(**options)`` makes a poller; options absent take their default.
    factory: Callable[..., Poller]
    #: ``unavailable_reason(options)``: None if the family runs here with these (valid,
    #: complete) options, else why not, naming the platform or the missing package.
    unavailable_reason: Callable[[Mapping[str, str]], Optional[str]]
    #: True if a descriptor ready for READ and WRITE gets one call with both bits in a
    #: pass; False if the loop calls a reader and a writer separately (contract, 9).
    merges_read_and_write: bool = True
    #: The distributions (PyPI names) it runs on, whose versions ``echo-server --version``
    #: reports; the standard library is not named.
    libraries: Tuple[str, ...] = ()
    #: ``attach(host, **options)``: a poller over ``host``, a loop the caller owns, or
    #: None if ``host`` is not of this family. It must not import a library ``host``
    #: cannot come from (look in ``sys.modules`` first). None: the family has no attached form.
    attach: Optional[Callable[..., Optional[Poller]]] = None
    #: What ``attach`` accepts, for `pollers.attach`'s TypeError ("an asyncio event loop").
    attach_accepts: str = ""
    #: The attached variants (``asyncio-attached``): their names, the options of the
    #: host loop they stand for (``unavailable_reason`` applies), and where they run.
    attached_variants: Tuple[VariantSpec, ...] = ()
    option_names: Tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "option_names", tuple(option.name for option in self.options))
        for variant in self.variants + self.attached_variants:
            if set(variant.options) != set(self.option_names):
                raise ValueError(
                    f"variant {variant.name!r} of {self.name!r} must fix every option "
                    f"({', '.join(self.option_names)})"
                )
