"""What is secret about an endpoint besides its key: the credentials its base URL may carry.

A base URL may hold credentials: a user and password or a token before the host
(``https://user:pass@host/v1``) and keys in its query (``?api-key=...``, ``?token=...``,
``?sig=...``). They are sent, never written: a run hashes, records and shows the URL's public
form (:func:`public_url`, each secret replaced by ``***``), and what a server sends back is
scrubbed of them as it is of the key (:func:`url_secrets`, which ``providers.translate.scrub``
takes with the key). A run stores its experiment with each base URL in public form
(:func:`public_spec`); a retry, a score or a batch collection, which rebuild the experiment from
that copy, take the credentials back from the run's file (:func:`restore_spec`). A URL without
credentials is its own public form, character for
character, so the requests' hashes (and the cache) are those of earlier versions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

__all__ = ["HIDDEN", "public_spec", "public_url", "restore_spec", "secrets_of", "url_secrets"]

#: What a secret is replaced by.
HIDDEN = "***"
#: ``scheme://userinfo@``: the userinfo before the host.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")
#: A query parameter (``?name=value`` or ``&name=value``).
_PARAM = re.compile(r"([?&])([^=&#]*)=([^&#]*)")
#: Query parameter names that carry a credential (``api-version`` does not).
_SECRET_NAME = re.compile(r"key|token|secret|pass|auth|sig|credential|session", re.IGNORECASE)
#: A part of a credential shorter than this is not looked for on its own in what servers send
#: (it would blank out ordinary words); the whole userinfo always is.
_MIN_PART = 6


def public_url(url: str) -> str:
    """``url`` with its userinfo and its credential query values replaced by ``***``."""
    public = _USERINFO.sub(lambda m: f"{m.group(1)}{HIDDEN}@", url, count=1)
    if "?" in public:
        head, _, query = public.partition("?")
        public = head + _PARAM.sub(_hide, "?" + query)
    return public


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The secrets ``url`` carries (as written and percent-decoded), to scrub from what a
    server sends back; none for a URL without credentials."""
    if not url:
        return ()
    found: list[str] = []
    userinfo = _USERINFO.match(url)
    if userinfo and userinfo.group(2):
        found.append(userinfo.group(2))
        found += [p for p in userinfo.group(2).split(":", 1)[1:] if len(p) >= _MIN_PART]
    if "?" in url:
        query = "?" + url.partition("?")[2]
        found += [m.group(3) for m in _PARAM.finditer(query)
                  if _SECRET_NAME.search(m.group(2)) and len(m.group(3)) >= _MIN_PART]  # fmt: skip
    decoded = [unquote(s) for s in found]
    return tuple(dict.fromkeys(s for s in (*found, *decoded) if s))


def secrets_of(key: str | None, url: str | None) -> tuple[str, ...]:
    """Everything a provider scrubs from what a server sends back: its key and the
    credentials of its URL, longest first (``user:pass`` is replaced before ``pass``)."""
    return tuple(sorted({s for s in (key, *url_secrets(url)) if s}, key=len, reverse=True))


def public_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """An experiment's mapping (``Experiment.to_dict()``) as a run stores it: each provider's
    ``base_url`` in public form."""
    return _each_url(spec, lambda name, url: public_url(url))


def restore_spec(stored: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """A run's stored experiment with the credentials of its base URLs taken from ``current``
    (its file as it is now), for each provider whose URL there has the stored public form."""
    found = current.get("providers")
    urls = {
        name: config.get("base_url")
        for name, config in (found.items() if isinstance(found, Mapping) else ())
        if isinstance(config, Mapping)
    }

    def restored(name: str, url: str) -> str:
        own = urls.get(name)
        return own if isinstance(own, str) and public_url(own) == url else url

    return _each_url(stored, restored)


def _each_url(spec: Mapping[str, Any], change: Callable[[str, str], str]) -> dict[str, Any]:
    providers = spec.get("providers")
    if not isinstance(providers, Mapping):
        return dict(spec)
    out = {}
    for name, config in providers.items():
        url = config.get("base_url") if isinstance(config, Mapping) else None
        out[name] = {**config, "base_url": change(name, url)} if isinstance(url, str) else config
    return {**spec, "providers": out}


def _hide(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    return f"{sep}{name}={HIDDEN}" if value and _SECRET_NAME.search(name) else match.group(0)
