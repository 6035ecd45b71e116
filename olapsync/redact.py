"""Keep passwords out of every message, log line and exception text."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s]*:)(?P<pw>[^@\s/]*)(?P<at>@)"
)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|pass|pwd)=)(?P<pw>[^&\s]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return `url` with its password replaced by `***`.

    >>> redact_url("postgresql://app:s3cret@db:5432/crm")
    'postgresql://app:***@db:5432/crm'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        url = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    return _QUERY_PASSWORD.sub(r"\g<head>***", url)


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Replace passwords of any URL inside `text`, and each of `secrets`, with `***`.

    A password found in a URL is also removed wherever else it appears in the text.
    """
    found = tuple(m.group("pw") for m in _URL_PASSWORD.finditer(text))
    secrets = (*secrets, *found, *(m.group("pw") for m in _QUERY_PASSWORD.finditer(text)))
    text = _URL_PASSWORD.sub(r"\g<head>***\g<at>", text)
    text = _QUERY_PASSWORD.sub(r"\g<head>***", text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret and secret != "***":
            text = text.replace(secret, "***")
    return text


def url_password(url: str) -> str:
    """The password inside `url`, or '' when it has none."""
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""
