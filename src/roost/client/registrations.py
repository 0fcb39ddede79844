"""What a client has set up on the broker, so that a new connection can set it up again.

Rules of this module:

- Pure bookkeeping: no I/O. The client records an entry before it sends the request, and the
  entry remembers the connection generation it was last sent on. After a reconnect every entry
  whose generation is not the current one is pending, and :meth:`Registrations.pending` lists
  them in replay order: registrations, then owned state values, then listens, observes and
  guards.
- Leases are never recorded here: a lost lease stays lost (leases.md §4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from roost.protocol.messages import Unknown
from roost.protocol.values import Value

__all__ = (
    "ActionEntry",
    "EventEntry",
    "GuardEntry",
    "Kind",
    "ListenEntry",
    "ObserveEntry",
    "PropEntry",
    "Registrations",
    "StateEntry",
    "Subscriber",
)

#: Never the generation of a live connection: marks an entry as not sent yet.
UNSENT = -1

Kind = Literal["action", "prop", "event", "state", "state_value", "listen", "observe", "guard"]
_ORDER: tuple[Kind, ...] = (
    "action",
    "prop",
    "event",
    "state",
    "state_value",
    "listen",
    "observe",
    "guard",
)


class Subscriber(Protocol):
    """Receives the values of one event or state, in order, without blocking."""

    def deliver(self, value: Any) -> None:
        """Take one value (a state's may be ``Unknown``); must not block or raise."""


# Plain slotted classes rather than dataclasses: every ``roost`` command imports this module,
# and building dataclasses at import costs start-up time for nothing used here.


class _Entry:
    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = type(self).__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


class ActionEntry(_Entry):
    """An action this client owns."""

    __slots__ = ("callback", "gen")

    def __init__(self, callback: Callable[..., Any], gen: int = UNSENT) -> None:
        self.callback = callback
        self.gen = gen


class PropEntry(_Entry):
    """A prop this client owns."""

    __slots__ = ("gen", "get_callback", "set_callback")

    def __init__(
        self,
        get_callback: Callable[[], Any],
        set_callback: Callable[[Any], Any] | None,
        gen: int = UNSENT,
    ) -> None:
        self.get_callback = get_callback
        self.set_callback = set_callback
        self.gen = gen


class EventEntry(_Entry):
    """An event this client owns."""

    __slots__ = ("gen",)

    def __init__(self, gen: int = UNSENT) -> None:
        self.gen = gen


class StateEntry(_Entry):
    """A state this client owns, with its last value (replayed after the registration)."""

    __slots__ = ("gen", "set_callback", "value", "value_gen")

    def __init__(
        self,
        set_callback: Callable[[Any], Any] | None,
        value: Value | None = None,  # None: unknown
        gen: int = UNSENT,
        value_gen: int = UNSENT,
    ) -> None:
        self.set_callback = set_callback
        self.value = value
        self.gen = gen
        self.value_gen = value_gen


class ListenEntry(_Entry):
    """Local listeners of one event path (the broker knows only one listen per connection)."""

    __slots__ = ("gen", "subscribers")

    def __init__(self, subscribers: list[Subscriber] | None = None, gen: int = UNSENT) -> None:
        self.subscribers: list[Subscriber] = [] if subscribers is None else subscribers
        self.gen = gen


class ObserveEntry(_Entry):
    """Local observers of one state path and its latest value as seen by this client."""

    __slots__ = ("gen", "subscribers", "value")

    def __init__(
        self, subscribers: list[Subscriber] | None = None, value: Any = Unknown, gen: int = UNSENT
    ) -> None:
        self.subscribers: list[Subscriber] = [] if subscribers is None else subscribers
        self.value = value
        self.gen = gen


class GuardEntry(_Entry):
    """A lease guard on a node this client owns."""

    __slots__ = ("gen", "resource")

    def __init__(self, resource: str, gen: int = UNSENT) -> None:
        self.resource = resource
        self.gen = gen


class Registrations:
    """Everything to replay after a reconnect, by path."""

    def __init__(self) -> None:
        self.actions: dict[str, ActionEntry] = {}
        self.props: dict[str, PropEntry] = {}
        self.events: dict[str, EventEntry] = {}
        self.states: dict[str, StateEntry] = {}
        self.listens: dict[str, ListenEntry] = {}
        self.observes: dict[str, ObserveEntry] = {}
        self.guards: dict[str, GuardEntry] = {}

    def owned(self, path: str) -> bool:
        """Whether this client registered ``path`` (any kind)."""
        return (
            path in self.actions
            or path in self.props
            or path in self.events
            or (path in self.states)
        )

    def pending(self, gen: int) -> list[tuple[Kind, str]]:
        """Every entry not yet sent on connection generation ``gen``, in replay order.

        ``guard`` entries are listed only for owned paths that are already registered on ``gen``.
        A state's value is listed only once its registration has been sent on ``gen``.
        """
        out: list[tuple[Kind, str]] = []
        for kind in _ORDER:
            if kind == "action":
                out += [(kind, p) for p, e in self.actions.items() if e.gen != gen]
            elif kind == "prop":
                out += [(kind, p) for p, e in self.props.items() if e.gen != gen]
            elif kind == "event":
                out += [(kind, p) for p, e in self.events.items() if e.gen != gen]
            elif kind == "state":
                out += [(kind, p) for p, e in self.states.items() if e.gen != gen]
            elif kind == "state_value":
                out += [
                    (kind, p)
                    for p, e in self.states.items()
                    if e.value is not None and e.value_gen != gen
                ]
            elif kind == "listen":
                out += [
                    (kind, p) for p, e in self.listens.items() if e.subscribers and e.gen != gen
                ]
            elif kind == "observe":
                out += [
                    (kind, p) for p, e in self.observes.items() if e.subscribers and e.gen != gen
                ]
            else:
                out += [(kind, p) for p, e in self.guards.items() if e.gen != gen]
        return out

    def forget(self, kind: Kind, path: str) -> None:
        """Drop an entry the broker refused (replay errors are not retried)."""
        if kind == "state_value":
            state = self.states.get(path)
            if state is not None:
                state.value = None
        elif kind == "action":
            self.actions.pop(path, None)
        elif kind == "prop":
            self.props.pop(path, None)
        elif kind == "event":
            self.events.pop(path, None)
        elif kind == "state":
            self.states.pop(path, None)
        elif kind == "listen":
            self.listens.pop(path, None)
        elif kind == "observe":
            self.observes.pop(path, None)
        else:
            self.guards.pop(path, None)
