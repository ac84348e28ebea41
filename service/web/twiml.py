"""TwiML answers to Twilio's webhooks, built with the twilio package's ``MessagingResponse``
(which escapes the text), never by hand."""

from __future__ import annotations

from fastapi.responses import Response
from twilio.twiml.messaging_response import MessagingResponse

XML = "application/xml"


def twiml(reply_text: str | None = None) -> Response:
    """An answer that texts ``reply_text`` back, or says nothing (empty ``<Response/>``)."""
    answer = MessagingResponse()
    if reply_text:
        answer.message(reply_text)
    return Response(str(answer), media_type=XML)
