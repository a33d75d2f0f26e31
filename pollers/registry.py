"""The registry: backend names, their variants, and why a variant cannot run here.

A *family* (``tornado``, ``selectors``, ``asyncio``, ``twisted``, ``gevent``) takes
options (``loop=``, ``selector=``, ``reactor=``); a *variant* is one family with its
options fixed, named as the test ids name it (``selectors-epoll``, ``asyncio-uvloop``...).

Nothing here names a family: each backend module declares its own
(``FAMILY``, a `pollers.family.Family`), and `BACKEND_MODULES` says which
modules to read, in the order the families are listed.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .base import Poller
from .family import Family, Option

#: The backend modules of this package, each declaring ``FAMILY``; their order is
#: the order of `FAMILIES`, `VARIANTS` and the test ids.
BACKEND_MODULES: Tuple[str, ...] = (
    "tornado_poller",
    "selector_poller",
    "asyncio_poller",
    "twisted_poller",
    "gevent_poller",
)


def _declared_families() -> Dict[str, Family]:
    families: Dict[str, Family] = {}
    for module_name in BACKEND_MODULES:
        family = importlib.import_module(f"{__package__}.{module_name}").FAMILY
        if not isinstance(family, Family) or family.name in families:
            raise TypeError(f"{module_name}.FAMILY must be a Family with a name of its own")
        families[family.name] = family
    return families


#: Family name -> its declaration.
FAMILY_DECLARATIONS: Dict[str, Family] = _declared_families()

#: Family name -> the names of the options it takes.
FAMILIES: Dict[str, Tuple[str, ...]] = {
    name: family.option_names for name, family in FAMILY_DECLARATIONS.items()
}

#: Every variant, in a stable order, with the family and options it stands for.
VARIANTS: Dict[str, Tuple[str, Dict[str, str]]] = {
    variant.name: (family.name, dict(variant.options))
    for family in FAMILY_DECLARATIONS.values()
    for variant in family.variants
}

#: Every attached variant (``asyncio-attached``...), with the family and the options of
#: the host loop it stands for. Not in `VARIANTS`: ``create`` cannot make them, since
#: an attached poller needs a host loop (see `attach`).
ATTACHED_VARIANTS: Dict[str, Tuple[str, Dict[str, str]]] = {
    variant.name: (family.name, dict(variant.options))
    for family in FAMILY_DECLARATIONS.values()
    for variant in family.attached_variants
}

#: Variant name (owned or attached) -> the lowest descriptor number it refuses (select(2)'s
#: FD_SETSIZE), for the variants that have such a limit.
DESCRIPTOR_LIMITS: Dict[str, int] = {
    variant.name: variant.descriptor_limit
    for family in FAMILY_DECLARATIONS.values()
    for variant in family.variants + family.attached_variants
    if variant.descriptor_limit is not None
}


class Variant(NamedTuple):
    name: str
    family: str
    options: Dict[str, str]
    reason: Optional[str]
    """None when the variant runs here, otherwise why it does not."""

    @property
    def runs_here(self) -> bool:
        return self.reason is None


def variants() -> List[Variant]:
    """Every variant, whether it runs here, and if not, why."""
    return [
        Variant(name, family, dict(options), _reason(family, options))
        for name, (family, options) in VARIANTS.items()
    ]


def attached_variants() -> List[Variant]:
    """Every attached variant, whether it runs here, and if not, why.

    Apart from `variants`, which lists the owned variants that `create` makes
    (the command line's ``--poller`` choices and the benchmark targets).
    """
    return [
        Variant(name, family, dict(options), _reason(family, options))
        for name, (family, options) in ATTACHED_VARIANTS.items()
    ]


def attach(host: object, **options: Any) -> Poller:
    """A poller over ``host``, an event loop the caller owns and keeps owning.

    The family is found from the type of ``host``: an asyncio event loop (uvloop's
    included), a Tornado ``IOLoop``, a Twisted reactor, a gevent loop or hub.
    The poller never closes, stops or replaces ``host``; see "Attached pollers"
    in ``docs/contract.md``. TypeError, naming what is accepted, for anything else.
    """
    for family in FAMILY_DECLARATIONS.values():
        if family.attach is not None:
            poller = family.attach(host, **options)
            if poller is not None:
                return poller
    accepted = [family.attach_accepts for family in FAMILY_DECLARATIONS.values() if family.attach]
    raise TypeError(
        f"cannot attach a poller to {type(host).__module__}.{type(host).__qualname__}; "
        f"attach takes {', '.join(accepted)}"
    )


def _reason(family: str, options: Dict[str, str]) -> Optional[str]:
    return FAMILY_DECLARATIONS[family].unavailable_reason(options)


def available() -> List[str]:
    """The names of the variants that run on this machine."""
    return [variant.name for variant in variants() if variant.runs_here]


def family_of(variant: str) -> Family:
    """The declaration of the family that ``variant`` (owned or attached) belongs to.

    KeyError if unknown.
    """
    family = VARIANTS[variant] if variant in VARIANTS else ATTACHED_VARIANTS[variant]
    return FAMILY_DECLARATIONS[family[0]]


def command_line_options() -> Dict[str, Tuple[Option, Tuple[str, ...]]]:
    """Each option name -> (its declaration, with every family's choices; the families).

    For a front end such as ``echo-server`` that offers one ``--NAME`` flag per option.
    """
    merged: Dict[str, Tuple[Option, Tuple[str, ...]]] = {}
    for family in FAMILY_DECLARATIONS.values():
        for option in family.options:
            if option.name in merged:
                seen, takers = merged[option.name]
                choices = seen.choices + tuple(c for c in option.choices if c not in seen.choices)
                seen = Option(seen.name, choices, seen.default, seen.help)
                merged[option.name] = (seen, (*takers, family.name))
            else:
                merged[option.name] = (option, (family.name,))
    return merged


def resolve(name: str, **options: str) -> Tuple[str, Dict[str, str]]:
    """Turn a family or variant name plus options into (family, every option); ValueError if bad."""
    if name in VARIANTS and name not in FAMILIES:
        family, fixed = VARIANTS[name]
        if options:
            raise ValueError(
                f"variant {name!r} fixes its options; use the family {family!r} with "
                f"{', '.join(f'{k}=' for k in FAMILIES[family])} instead"
            )
        return family, dict(fixed)
    if name not in FAMILIES:
        raise ValueError(
            f"unknown poller {name!r}; families: {', '.join(FAMILIES)}; "
            f"variants: {', '.join(VARIANTS)}"
        )
    unknown = sorted(set(options) - set(FAMILIES[name]))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for {name!r}; "
            f"it takes: {', '.join(FAMILIES[name])}"
        )
    complete: Dict[str, str] = {}
    for option in FAMILY_DECLARATIONS[name].options:
        value = options.get(option.name, option.default)
        if value not in option.choices:
            raise ValueError(
                f"unknown {option.name} {value!r}; choose from {', '.join(option.choices)}"
            )
        complete[option.name] = value
    return name, complete


def create(name: str, **options: str) -> Poller:
    """Make a poller from a family (``"selectors", selector="poll"``) or a variant name.

    Raises ValueError naming the valid choices for an unknown name or option, and
    naming why (and what does run) for a variant that cannot run here.
    """
    family, options = resolve(name, **options)
    declaration = FAMILY_DECLARATIONS[family]
    reason = declaration.unavailable_reason(options)
    if reason is not None:
        raise ValueError(f"{reason}. Available here: {', '.join(available())}")
    return declaration.factory(**options)


def variant_table() -> str:
    """The Markdown table of every variant, as ``docs/contract.md`` shows it."""
    rows = ["| variant | family and options | runs on |", "| --- | --- | --- |"]
    for family in FAMILY_DECLARATIONS.values():
        defaults = {option.name: option.default for option in family.options}
        for variant in family.variants:
            arguments = [repr(family.name).replace("'", '"')] + [
                f'{key}="{value}"'
                for key, value in variant.options.items()
                if value != defaults[key]
            ]
            call = f"create({', '.join(arguments)})"
            rows.append(f"| `{variant.name}` | `{call}` | {variant.runs_on} |")
    return "\n".join(rows) + "\n"
