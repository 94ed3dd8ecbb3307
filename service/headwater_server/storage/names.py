"""Friendly generated run names such as "crimson-otter", easy to tell apart at a glance."""

from __future__ import annotations

import random

ADJECTIVES: tuple[str, ...] = (
    "amber", "azure", "bold", "brave", "brisk", "calm", "clever", "cobalt", "crimson", "daring",
    "eager", "emerald", "fancy", "gentle", "golden", "hardy", "indigo", "jolly", "keen", "lively",
    "lucky", "mellow", "nimble", "olive", "patient", "proud", "quick", "quiet", "rapid", "rustic",
    "scarlet", "silver", "steady", "sunny", "swift", "tidy", "vivid", "wise", "witty", "zesty",
)  # fmt: skip

ANIMALS: tuple[str, ...] = (
    "badger", "beaver", "bison", "crane", "dingo", "dolphin", "eagle", "falcon", "ferret", "gecko",
    "heron", "ibis", "jackal", "koala", "lemur", "lynx", "marten", "moose", "newt", "ocelot",
    "otter", "owl", "panda", "puffin", "quail", "raven", "salmon", "seal", "stoat", "swan",
    "tapir", "toucan", "trout", "turtle", "viper", "walrus", "weasel", "wombat", "yak", "zebra",
)  # fmt: skip

_random = random.Random()


def generate_run_name() -> str:
    """A random "adjective-animal" name; not unique (1,600 combinations), only memorable."""
    return f"{_random.choice(ADJECTIVES)}-{_random.choice(ANIMALS)}"
