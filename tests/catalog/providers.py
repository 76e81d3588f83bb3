"""Provider APIs served locally for tests: OpenRouter, OpenAI and Gemini model lists in their published formats.

``ProviderServer`` is an aiohttp app on 127.0.0.1 with mutable state: the models each
API lists, and faults to inject per API (status codes with headers, a hang past the
client's timeout, a cut-off body). Shapes follow each provider's documentation:

* OpenRouter ``GET /api/v1/models`` → ``{"data": [Model]}``; prices are USD per token as
  decimal strings; ``supported_parameters`` tells reasoning and structured output.
* OpenAI ``GET /v1/models`` (``Authorization: Bearer``) → ``{"object": "list", "data":
  [{"id", "object": "model", "created", "owned_by"}]}``; errors as ``{"error": {...}}``.
* Gemini ``GET /v1beta/models?pageSize=&pageToken=`` (``x-goog-api-key``) → ``{"models":
  [Model], "nextPageToken"}``; at most ``page_cap`` models per page whatever ``pageSize``
  asks (the real API caps at 1000), so pagination is exercised.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

OPENAI_KEY = "sk-test-openai-key-0123456789"
GEMINI_KEY = "AIza-test-gemini-key-0123456789"

# The bundled dataset's models, as OpenRouter would list them (slugs and list prices of
# data/routing-eval/llmrouter-dc.models.json), plus two familiar hosted models.
DATASET_PRICES = {
    "qwen/qwen2.5-7b-instruct": 0.2,
    "google/codegemma-7b": 0.2,
    "google/gemma-2-9b-it": 0.1,
    "meta/llama-3.1-8b-instruct": 0.2,
    "nvidia/llama3-chatqa-1.5-8b": 0.2,
    "mistralai/mistral-7b-instruct-v0.3": 0.2,
    "nvidia/llama-3.3-nemotron-super-49b-v1": 0.9,
    "nvidia/llama-3.1-nemotron-51b-instruct": 0.9,
    "nvidia/llama3-chatqa-1.5-70b": 0.9,
    "meta/llama3-70b-instruct": 0.9,
    "mistralai/mixtral-8x7b-instruct-v0.1": 0.6,
    "mistralai/mixtral-8x22b-instruct-v0.1": 1.2,
    "writer/palmyra-creative-122b": 1.8,
    "nv-mistralai/mistral-nemo-12b-instruct": 0.3,
}


def per_token(per_million: float) -> str:
    """USD per 1M tokens → OpenRouter's per-token decimal string (0.2 → "0.0000002")."""
    return format(Decimal(str(per_million)) / Decimal(1_000_000), "f")


def openrouter_model(
    slug: str,
    *,
    price_in: float,
    price_out: float,
    context: int = 131072,
    max_out: int | None = 8192,
    reasoning: bool = False,
    json_mode: bool = True,
    name: str = "",
    outputs: tuple[str, ...] = ("text",),
    expiration_date: str | None = None,
) -> dict[str, Any]:
    """One model object of OpenRouter's /api/v1/models, with every documented field."""
    parameters = [
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "tools",
        "tool_choice",
    ]
    if reasoning:
        parameters += ["reasoning", "include_reasoning"]
    if json_mode:
        parameters += ["response_format", "structured_outputs"]
    vendor = slug.split("/", 1)[0]
    return {
        "id": slug,
        "canonical_slug": slug,
        "hugging_face_id": None,
        "name": name or f"{vendor}: {slug.split('/')[-1]}",
        "created": 1721692800,
        "description": f"{slug} served through OpenRouter.",
        "context_length": context,
        "architecture": {
            "modality": "text->" + "+".join(outputs),
            "input_modalities": ["text"],
            "output_modalities": list(outputs),
            "tokenizer": "Llama3",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": per_token(price_in),
            "completion": per_token(price_out),
            "request": "0",
            "image": "0",
            "web_search": "0",
            "internal_reasoning": "0",
        },
        "top_provider": {"context_length": context, "max_completion_tokens": max_out, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": parameters,
        "default_parameters": {},
        "expiration_date": expiration_date,
    }


def default_openrouter() -> list[dict[str, Any]]:
    models = [openrouter_model(slug, price_in=p, price_out=p) for slug, p in DATASET_PRICES.items()]
    models.append(
        openrouter_model(
            "openai/gpt-4o-mini",
            price_in=0.15,
            price_out=0.6,
            context=128000,
            max_out=16384,
            name="OpenAI: GPT-4o-mini",
        )
    )
    models.append(
        openrouter_model(
            "deepseek/deepseek-r1",
            price_in=0.4,
            price_out=2.0,
            context=163840,
            max_out=None,
            reasoning=True,
            name="DeepSeek: R1",
        )
    )
    models.append(openrouter_model("openai/gpt-image-1", price_in=5.0, price_out=40.0, outputs=("image",)))
    models.append(
        {
            "id": "openrouter/auto",
            "name": "Auto Router",
            "context_length": 2000000,
            "pricing": {"prompt": "-1", "completion": "-1"},
            "architecture": {"output_modalities": ["text"]},
            "top_provider": {"context_length": None, "max_completion_tokens": None},
            "supported_parameters": [],
        }
    )
    return models


def default_openai() -> list[dict[str, Any]]:
    ids = [
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini",
        "o3-mini",
        "gpt-5-preview-x",
        "text-embedding-3-small",
        "whisper-1",
        "tts-1",
        "dall-e-3",
        "omni-moderation-latest",
    ]
    return [{"id": i, "object": "model", "created": 1715367049, "owned_by": "system"} for i in ids]


def gemini_model(
    name: str,
    *,
    context: int,
    output: int,
    thinking: bool | None = None,
    methods: tuple[str, ...] = ("generateContent", "countTokens"),
    version: str = "001",
) -> dict[str, Any]:
    model = {
        "name": f"models/{name}",
        "baseModelId": name.rsplit("-", 1)[0] if name[-3:].isdigit() else name,
        "version": version,
        "displayName": name.replace("-", " ").title(),
        "description": f"{name}.",
        "inputTokenLimit": context,
        "outputTokenLimit": output,
        "supportedGenerationMethods": list(methods),
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2.0,
    }
    if thinking is not None:
        model["thinking"] = thinking
    return model


def default_gemini() -> list[dict[str, Any]]:
    return [
        gemini_model("gemini-2.5-pro", context=1048576, output=65536, thinking=True),
        gemini_model("gemini-2.5-flash", context=1048576, output=65536, thinking=True),
        gemini_model("gemini-2.0-flash", context=1048576, output=8192, thinking=False),
        gemini_model("gemini-1.5-flash-002", context=1000000, output=8192),
        gemini_model("text-embedding-004", context=2048, output=1, methods=("embedContent",)),
        gemini_model("gemma-3-27b-it", context=131072, output=8192),
    ]


@dataclass
class Fault:
    """What one request gets instead of the listing: a status (+ headers, body), a hang, or a cut-off body."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    hang_seconds: float = 0.0
    truncated: bool = False


@dataclass
class ProviderServer:
    """The three APIs on one local server; ``base(api)`` is what the settings' base URL gets."""

    openrouter: list[dict[str, Any]] = field(default_factory=default_openrouter)
    openai: list[dict[str, Any]] = field(default_factory=default_openai)
    gemini: list[dict[str, Any]] = field(default_factory=default_gemini)
    page_cap: int = 2
    faults: dict[str, deque[Fault]] = field(
        default_factory=lambda: {"openrouter": deque(), "openai": deque(), "gemini": deque()}
    )
    always_fail: set[str] = field(default_factory=set)  # APIs that answer 500 to everything
    requests: dict[str, int] = field(default_factory=lambda: {"openrouter": 0, "openai": 0, "gemini": 0})
    _server: TestServer | None = None

    async def start(self) -> ProviderServer:
        app = web.Application()
        app.router.add_get("/api/v1/models", self._openrouter)
        app.router.add_get("/v1/models", self._openai)
        app.router.add_get("/v1beta/models", self._gemini)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    def base(self, api: str) -> str:
        assert self._server is not None
        path = {"openrouter": "/api/v1", "openai": "/v1", "gemini": "/v1beta"}[api]
        return str(self._server.make_url(path))

    def fail(self, api: str, *faults: Fault) -> None:
        self.faults[api].extend(faults)

    def set_price(self, slug: str, price_in: float, price_out: float | None = None) -> None:
        for model in self.openrouter:
            if model["id"] == slug:
                model["pricing"]["prompt"] = per_token(price_in)
                model["pricing"]["completion"] = per_token(price_in if price_out is None else price_out)
                return
        raise KeyError(slug)

    def remove(self, slug: str) -> None:
        self.openrouter = [m for m in self.openrouter if m["id"] != slug]

    async def _fault(self, api: str) -> web.StreamResponse | None:
        self.requests[api] += 1
        if api in self.always_fail:
            return web.json_response({"error": {"code": 500, "message": "Internal error"}}, status=500)
        if not self.faults[api]:
            return None
        fault = self.faults[api].popleft()
        if fault.hang_seconds:
            await asyncio.sleep(fault.hang_seconds)
        if fault.truncated:
            return web.Response(body=b'{"data": [{"id": "meta/llama-3.1-8b-instr', content_type="application/json")
        return web.Response(
            status=fault.status,
            headers=fault.headers,
            text=fault.body or json.dumps({"error": {"code": fault.status, "message": "fault"}}),
            content_type="application/json",
        )

    async def _openrouter(self, request: web.Request) -> web.StreamResponse:
        return await self._fault("openrouter") or web.json_response({"data": self.openrouter})

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {OPENAI_KEY}":
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        return await self._fault("openai") or web.json_response({"object": "list", "data": self.openai})

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("x-goog-api-key") != GEMINI_KEY or "key" in request.query:
            return web.json_response(
                {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}, status=400
            )
        fault = await self._fault("gemini")
        if fault is not None:
            return fault
        size = min(int(request.query.get("pageSize", "50")), self.page_cap)
        start = int(request.query.get("pageToken") or 0) if (request.query.get("pageToken") or "0").isdigit() else -1
        if start < 0:
            return web.json_response(
                {"error": {"code": 400, "message": "Invalid page token.", "status": "INVALID_ARGUMENT"}}, status=400
            )
        page: dict[str, Any] = {"models": self.gemini[start : start + size]}
        if start + size < len(self.gemini):
            page["nextPageToken"] = str(start + size)
        return web.json_response(page)
