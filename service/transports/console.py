"""Development transports: print each message instead of sending it.

The console is the developer's own screen, so the body is shown (seeing the message is the
point); the recipient is still masked, because terminals end up in screenshots and pastes.
"""

from __future__ import annotations

import sys
import threading
import uuid
from typing import TextIO

from service.masking import mask_email, mask_phone
from service.transports.base import OutboundMessage, Receipt

RULE = "-" * 60


class _ConsoleTransport:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        # Worker threads print whole blocks, never interleaved lines.
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> Receipt:
        provider_id = f"console-{uuid.uuid4()}"
        block = "\n".join([RULE, *self._lines(message, provider_id), RULE, ""])
        # sys.stdout is looked up per message: it may have been replaced since we were made.
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(block)
            stream.flush()
        return Receipt(provider_id=provider_id, status="sent")

    def _lines(self, message: OutboundMessage, provider_id: str) -> list[str]:
        raise NotImplementedError


class ConsoleSmsTransport(_ConsoleTransport):
    def _lines(self, message: OutboundMessage, provider_id: str) -> list[str]:
        header = f"SMS to {mask_phone(message.to)}  [{message.reference}, {provider_id}]"
        return [header, "", message.body]


class ConsoleEmailTransport(_ConsoleTransport):
    def _lines(self, message: OutboundMessage, provider_id: str) -> list[str]:
        header = f"EMAIL to {mask_email(message.to)}  [{message.reference}, {provider_id}]"
        lines = [header, f"Subject: {message.subject or ''}"]
        lines += [f"{name}: {value}" for name, value in message.headers.items()]
        lines += ["", message.body]
        if message.html is not None:
            lines += ["", f"(+ HTML part, {len(message.html)} characters)"]
        return lines
