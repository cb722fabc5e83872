"""Model backends behind one small interface (``providers.base``).

The web layer uses ``build_registry`` and the types in ``base`` and ``errors``; it never
imports ``requests`` or ``websocket`` itself.
"""
from .base import ChatRequest, Chunk, Message, ModelInfo, Provider, Usage
from .errors import ProviderError
from .registry import Registry, UnknownModelError, build_registry

__all__ = ["ChatRequest", "Chunk", "Message", "ModelInfo", "Provider", "ProviderError",
           "Registry", "UnknownModelError", "Usage", "build_registry"]
