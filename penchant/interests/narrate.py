"""An optional profile summary written by an OpenAI-compatible chat endpoint.

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


def narrate(profile: Profile, settings: LLMSettings | None) -> Profile:
    """Replace the profile's summary with the language model's, or note why the deterministic one stays."""
    if settings is None:
        return profile
    if not settings.model:
        profile.summary_note = (
            "PENCHANT_LLM_URL is set but PENCHANT_LLM_MODEL is not; deterministic summary used"
        )
        return profile
    facts = {
        k: v
        for k, v in profile.to_dict().items()
        if k in ("user_id", "long_term", "short_term", "emerging", "fading")
    }
    facts["short_term_window"] = profile.window
    body = {
        "model": settings.model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps(facts, ensure_ascii=False)},
        ],
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
    except urllib.error.HTTPError as exc:
        profile.summary_note = f"language-model endpoint answered HTTP {exc.code}; deterministic summary used"
        return profile
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        # OSError covers refused connections, DNS failures and timeouts; the rest a malformed answer.
        reason = str(exc) or type(exc).__name__
        profile.summary_note = f"language-model endpoint failed ({reason}); deterministic summary used"
        return profile
    profile.summary = text
    profile.summary_source = "llm"
    return profile
