"""The registry: backend names, their variants, and why a variant cannot run here.

A *family* (``tornado``, ``selectors``, ``asyncio``) takes options (``loop=``,
``selector=``); a *variant* is one family with its options fixed, named as the
test ids name it (``selectors-epoll``, ``asyncio-uvloop``...).
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from .base import Poller

FAMILIES: Dict[str, Tuple[str, ...]] = {
    "tornado": ("loop",),
    "selectors": ("selector",),
    "asyncio": ("loop",),
}

#: Every variant, in a stable order, with the family and options it stands for.
VARIANTS: Dict[str, Tuple[str, Dict[str, str]]] = {
    "tornado": ("tornado", {"loop": "asyncio"}),
    "tornado-uvloop": ("tornado", {"loop": "uvloop"}),
    "selectors-epoll": ("selectors", {"selector": "epoll"}),
    "selectors-kqueue": ("selectors", {"selector": "kqueue"}),
    "selectors-poll": ("selectors", {"selector": "poll"}),
    "selectors-select": ("selectors", {"selector": "select"}),
    "selectors-devpoll": ("selectors", {"selector": "devpoll"}),
    "asyncio": ("asyncio", {"loop": "asyncio"}),
    "asyncio-uvloop": ("asyncio", {"loop": "uvloop"}),
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


def _unavailable_reason(family: str, options: Dict[str, str]) -> Optional[str]:
    from .loop_base import loop_unavailable_reason
    from .selector_poller import selector_unavailable_reason
    from .tornado_poller import tornado_unavailable_reason

    if family == "selectors":
        selector = options.get("selector", "auto")
        return None if selector == "auto" else selector_unavailable_reason(selector)
    if family == "tornado":
        reason = tornado_unavailable_reason()
        if reason is not None:
            return reason
    return loop_unavailable_reason(options.get("loop", "asyncio"))


def variants() -> List[Variant]:
    """Every variant, whether it runs here, and if not, why."""
    return [
        Variant(name, family, dict(options), _unavailable_reason(family, options))
        for name, (family, options) in VARIANTS.items()
    ]


def available() -> List[str]:
    """The names of the variants that run on this machine."""
    return [variant.name for variant in variants() if variant.runs_here]


def resolve(name: str, **options: str) -> Tuple[str, Dict[str, str]]:
    """Turn a family or variant name plus options into (family, options); ValueError if bad."""
    if name in VARIANTS and name not in FAMILIES:
        family, fixed = VARIANTS[name]
        if options:
            raise ValueError(
                f"variant {name!r} fixes its options; use the family {family!r} with "
                f"{', '.join(f'{k}=' for k in FAMILIES[family])} instead"
            )
        options = dict(fixed)
    elif name in FAMILIES:
        family = name
        unknown = sorted(set(options) - set(FAMILIES[family]))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} for {family!r}; "
                f"it takes: {', '.join(FAMILIES[family])}"
            )
    else:
        raise ValueError(
            f"unknown poller {name!r}; families: {', '.join(FAMILIES)}; "
            f"variants: {', '.join(VARIANTS)}"
        )
    return family, options


def create(name: str, **options: str) -> Poller:
    """Make a poller from a family (``"selectors", selector="poll"``) or a variant name.

    Raises ValueError naming the valid choices for an unknown name or option, and
    naming why (and what does run) for a variant that cannot run here.
    """
    family, options = resolve(name, **options)
    reason = _unavailable_reason(family, options)
    if reason is not None:
        raise ValueError(f"{reason}. Available here: {', '.join(available())}")
    factory = _factory(family)
    return factory(**options)


def _factory(family: str) -> Callable[..., Poller]:
    if family == "selectors":
        from .selector_poller import create_selector_poller

        return create_selector_poller
    if family == "asyncio":
        from .asyncio_poller import AsyncioPoller

        return AsyncioPoller
    from .tornado_poller import TornadoPoller

    return TornadoPoller
