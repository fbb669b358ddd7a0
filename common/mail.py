"""Sending e-mail over SMTP (standard library ``smtplib``): the sender of the outbox's ``email`` channel.

A message's ``Message-ID`` is derived from its outbox key, so a retried delivery carries the same id and
mail systems can drop the duplicate. SMTP 5xx answers (mailbox unknown, message refused) are permanent
failures; everything else (connection refused, timeouts, 4xx) is retried by the outbox.
"""

from __future__ import annotations

import hashlib
import smtplib
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from common.delivery import DeliveryFailed
from common.outbox import OutboxItem
from common.settings import Settings

CHANNEL = "email"


@dataclass(frozen=True)
class SmtpSender:
    """Send one outbox item (payload ``to``, ``to_name``, ``subject``, ``body``) per call."""

    host: str
    port: int
    mail_from: str
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSender:
        return cls(settings.smtp_host, settings.smtp_port, settings.mail_from, settings.smtp_timeout_seconds)

    def message(self, item: OutboxItem) -> EmailMessage:
        """The e-mail an outbox item stands for."""
        payload = item.payload
        msg = EmailMessage()
        msg["From"] = self.mail_from
        to_name = str(payload.get("to_name") or "")
        msg["To"] = Address(display_name=to_name, addr_spec=payload["to"]) if to_name else payload["to"]
        msg["Subject"] = payload["subject"]
        msg["Date"] = formatdate(localtime=False)
        domain = self.mail_from.rpartition("@")[2] or "localhost"
        digest = hashlib.sha256(f"{item.channel}:{item.dedupe_key}".encode()).hexdigest()[:40]
        msg["Message-ID"] = f"<{digest}@{domain}>"
        msg["X-PRM-Topic"] = item.topic
        msg.set_content(payload["body"])
        return msg

    def __call__(self, item: OutboxItem) -> None:
        msg = self.message(item)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryFailed(
                f"recipient refused: {exc.recipients}", retryable=not all(c >= 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=exc.smtp_code < 500
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"mail server {self.host}:{self.port} unavailable: {exc}") from exc
