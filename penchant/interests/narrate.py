"""An optional profile summary, and optional new-interest proposals, written by an OpenAI-compatible
chat endpoint.

Configured by environment: ``PENCHANT_LLM_URL`` (the API base, e.g. ``http://localhost:8000/v1``, or
the full ``.../chat/completions`` address), ``PENCHANT_LLM_MODEL`` and, if the endpoint needs one,
``PENCHANT_LLM_API_KEY``. Whenever the endpoint is not configured, unreachable, slow or answers
something unusable, the deterministic summary stays and the profile says why.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

from penchant.interests.profile import Profile

SYSTEM_PROMPT = (
    "You describe a person's interests for the analysts of a recommendation platform. Write two or three "
    "plain sentences from the profile given as JSON: long-term interests, recent ones, and what is emerging "
    "or fading. Use only the interests in the profile; do not invent facts."
)


@dataclass(frozen=True)
class LLMSettings:
    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 20.0

    @classmethod
    def from_env(cls) -> LLMSettings | None:
        """Settings from the environment, or None when no endpoint is configured."""
        url = os.environ.get("PENCHANT_LLM_URL", "").strip()
        if not url:
            return None
        return cls(
            url=url,
            model=os.environ.get("PENCHANT_LLM_MODEL", "").strip(),
            api_key=os.environ.get("PENCHANT_LLM_API_KEY") or None,
        )

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"


PROPOSE_PROMPT = (
    "You help a recommendation platform suggest new interests to a person. From the profile given as "
    "JSON, pick at most {n} of the candidate interests listed under 'candidates' (interests the person has "
    "not engaged with yet) that they are most likely to enjoy next. Answer with a JSON array of their "
    "names, exactly as written in the list, best first, and nothing else."
)


class LLMError(Exception):
    """The endpoint was not configured, could not be reached, or answered something unusable."""


def chat(settings: LLMSettings, system: str, user: str) -> str:
    """The endpoint's answer to one system + user message (temperature 0), or :class:`LLMError`."""
    if not settings.model:
        raise LLMError("PENCHANT_LLM_URL is set but PENCHANT_LLM_MODEL is not")
    body = {
        "model": settings.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "temperature": 0,
    }
    headers = {"Content-Type": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    request = urllib.request.Request(
        settings.endpoint, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
            answer = json.loads(response.read().decode("utf-8"))
        text = answer["choices"][0]["message"]["content"].strip()
        if not text:
            raise ValueError("empty answer")
        return text
    except urllib.error.HTTPError as exc:
        raise LLMError(f"language-model endpoint answered HTTP {exc.code}") from None
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        # OSError covers refused connections, DNS failures and timeouts; the rest a malformed answer.
        raise LLMError(f"language-model endpoint failed ({str(exc) or type(exc).__name__})") from None


def _facts(profile: Profile) -> dict:
    facts = {
        k: v
        for k, v in profile.to_dict().items()
        if k in ("user_id", "long_term", "short_term", "emerging", "fading")
    }
    facts["short_term_window"] = profile.window
    return facts


def narrate(profile: Profile, settings: LLMSettings | None) -> Profile:
    """Replace the profile's summary with the language model's, or note why the deterministic one stays."""
    if settings is None:
        return profile
    try:
        text = chat(settings, SYSTEM_PROMPT, json.dumps(_facts(profile), ensure_ascii=False))
    except LLMError as exc:
        profile.summary_note = f"{exc}; deterministic summary used"
        return profile
    profile.summary = text
    profile.summary_source = "llm"
    return profile


def propose_interests(
    profile: Profile, candidates: list[str], settings: LLMSettings, n: int = 1
) -> list[str]:
    """Up to ``n`` of ``candidates`` (interests new to the user) the language model proposes from the
    profile, best first (the Google recipe: a language model picks the next interest cluster, the
    recommender the items in it). Names not in ``candidates`` are dropped; :class:`LLMError` when the
    endpoint fails or proposes none of them."""
    facts = {**_facts(profile), "candidates": candidates}
    text = chat(settings, PROPOSE_PROMPT.format(n=n), json.dumps(facts, ensure_ascii=False))
    try:
        start, end = text.index("["), text.rindex("]") + 1
        names = json.loads(text[start:end])
    except ValueError:
        raise LLMError("language-model endpoint did not answer a JSON array of interests") from None
    allowed = set(candidates)
    chosen = list(dict.fromkeys(str(x) for x in names if str(x) in allowed))[:n]
    if not chosen:
        raise LLMError("language-model endpoint proposed none of the candidate interests")
    return chosen
