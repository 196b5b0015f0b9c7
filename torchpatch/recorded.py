"""Functions held by history records, and what stands for one that could not cross processes.

A transform's history record keeps its arguments (:mod:`torchpatch.transforms.records`),
functions included: ``Lambda``'s, a masking callable. Records travel with
patches and batches, between processes too, where pickle cannot send a lambda
or a closure. :class:`RecordedFunction` holds such a function and pickles to
an :class:`UnsentFunction` where pickle cannot send it (and the decode-once
cache stores one likewise), so the record still arrives; only replaying it
raises, naming the function.
"""

from __future__ import annotations

import pickle
from typing import Any


class UnsentFunction:
    """Stands for a recorded function that pickle could not send to another process; raises when called.

    Example:
        >>> placeholder = UnsentFunction('<function <lambda> at 0x7f>')
        >>> placeholder
        UnsentFunction('<function <lambda> at 0x7f>')
        >>> placeholder(1)
        Traceback (most recent call last):
        ...
        RuntimeError: the function <function <lambda> at 0x7f> of a history record could not be pickled ...
    """

    def __init__(self, description: str) -> None:
        self.description = description

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"the function {self.description} of a history record could not be pickled when the record was sent "
            "from another process (a lambda or a closure, e.g. from a Queue worker), so the transform cannot be "
            "replayed here: define the function at module level, or replay in the process that applied it"
        )

    def __repr__(self) -> str:
        return f"UnsentFunction({self.description!r})"


class RecordedFunction:
    """A function argument of a history record: calls it, and pickles to :class:`UnsentFunction` where it cannot.

    Args:
        function: The callable (``Lambda``'s function, a masking callable...).

    Example:
        >>> import pickle
        >>> recorded = RecordedFunction(lambda x: x + 1)
        >>> recorded(1), type(pickle.loads(pickle.dumps(recorded))).__name__
        (2, 'UnsentFunction')
        >>> pickle.loads(pickle.dumps(RecordedFunction(abs)))(-3)
        3
    """

    __slots__ = ("_sendable", "function")

    def __init__(self, function: Any) -> None:
        self.function = function
        self._sendable: bool | None = None  # found at the first pickling; a record is sent with every patch

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return repr(self.function)

    def __eq__(self, other: object) -> bool:
        return bool(self.function == (other.function if isinstance(other, RecordedFunction) else other))

    def __hash__(self) -> int:
        return hash(self.function)

    def __copy__(self) -> RecordedFunction:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RecordedFunction:
        return self  # functions are not copied (deepcopy keeps them too); a lambda must stay callable

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self._sendable is None:
            try:
                pickle.dumps(self.function)
                self._sendable = True
            except Exception:  # noqa: BLE001 - whatever pickle raises, the record still travels
                self._sendable = False
        if not self._sendable:
            return (UnsentFunction, (repr(self.function),))
        return (RecordedFunction, (self.function,))


__all__ = ["RecordedFunction", "UnsentFunction"]
