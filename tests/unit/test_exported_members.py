from __future__ import annotations

import importlib.metadata

import olapsync


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_every_name_exists() -> None:
    assert olapsync.__all__ == sorted(olapsync.__all__, key=_isort_key)
    for name in olapsync.__all__:
        assert hasattr(olapsync, name), name


def test_every_public_class_is_exported() -> None:
    classes = {
        n for n, v in vars(olapsync).items() if isinstance(v, type) and not n.startswith("_")
    }
    assert classes <= set(olapsync.__all__)


def test_version_is_the_installed_package_version() -> None:
    assert olapsync.__version__ == importlib.metadata.version("olapsync")
