"""Wrappers that change how a task call treats one argument (as ``prefect.utilities.annotations``).

- `unmapped`: `Task.map` passes the value whole to every call instead of iterating over it;
- `allow_failure`: the downstream run starts even when this upstream future failed, and gets
  the upstream's exception as the value;
- `quote`: the value is passed as it is, without looking inside it for futures (cheap for a
  large collection that holds none).

Example:
    >>> from headwater import task, unmapped
    >>> @task
    ... def scale(x: int, factor: int) -> int:
    ...     return x * factor
    >>> # in a flow: scale.map([1, 2, 3], factor=unmapped(10))
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["BaseAnnotation", "allow_failure", "quote", "unmapped"]

T = TypeVar("T")


class BaseAnnotation(Generic[T]):
    """A value wrapped to tell the task machinery how to treat it; `unwrap` gives it back."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        """The wrapped value."""
        return self.value

    def rewrap(self, value: T) -> BaseAnnotation[T]:
        """The same kind of wrapper around another value (after futures inside were resolved)."""
        return type(self)(value)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self), id(self.value)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value,))


class unmapped(BaseAnnotation[T]):  # Prefect's lower-case name
    """Pass this argument whole to every call of `Task.map` (a list is not iterated over)."""

    def __getitem__(self, _index: Any) -> T:
        return self.value


class allow_failure(BaseAnnotation[T]):  # Prefect's lower-case name
    """Run the downstream task even if this upstream future or state did not complete.

    The argument then resolves to the upstream's result, or to its exception when it failed.
    """


class quote(BaseAnnotation[T]):  # Prefect's lower-case name
    """Pass this argument as it is: nothing inside it is resolved or inspected."""
