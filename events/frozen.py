"""``FrozenMap``: the immutable mapping of frozen Structs (events, write models, commands' results).

msgspec has no immutable mapping of its own. ``FrozenMap`` is a ``dict`` that refuses every change
and hashes by its items, so msgspec encodes it natively, as the JSON object a ``dict`` field always
was (the stored log and the Kafka messages do not change); decoding into it goes through
``dec_hook``, which validates the keys and values as ``dict[K, V]`` would and then freezes them.
Every decoder of a Struct with a ``FrozenMap`` field must pass ``dec_hook`` (``events.registry``
does for the log).
"""

from typing import Any, NoReturn, TypeVar, get_args, get_origin

import msgspec

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(dict[K, V]):
    """A mapping that cannot change after it is made; equal to a ``dict`` of the same items."""

    __slots__ = ()

    def _refuse(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} cannot be changed")

    def __setitem__(self, key: K, value: V) -> NoReturn:
        self._refuse()

    def __delitem__(self, key: K) -> NoReturn:
        self._refuse()

    def __ior__(self, other: object) -> NoReturn:  # type: ignore[misc]
        self._refuse()

    def clear(self) -> NoReturn:
        self._refuse()

    def pop(self, *args: object) -> NoReturn:
        self._refuse()

    def popitem(self) -> NoReturn:
        self._refuse()

    def setdefault(self, *args: object) -> NoReturn:
        self._refuse()

    def update(self, *args: object, **kwargs: object) -> NoReturn:
        self._refuse()

    def __reduce__(self) -> tuple[type["FrozenMap[K, V]"], tuple[dict[K, V]]]:
        """Copied and pickled whole (the default would rebuild it item by item, which it refuses)."""
        return (type(self), (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({dict.__repr__(self)})"


def dec_hook(type_: Any, obj: Any) -> Any:
    """msgspec's decode hook for ``FrozenMap[K, V]`` fields: ``obj`` checked as ``dict[K, V]``."""
    if type_ is FrozenMap or get_origin(type_) is FrozenMap:
        args = get_args(type_) or (Any, Any)
        return FrozenMap(msgspec.convert(obj, dict[args[0], args[1]]))  # type: ignore[valid-type]
    raise NotImplementedError(f"{type_!r} is not decoded by this hook")
