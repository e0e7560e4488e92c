"""Email backends: console (log), file (one .eml per message), memory (tests), smtp."""

from __future__ import annotations

import logging
import smtplib
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path

from flask import Flask

log = logging.getLogger(__name__)

#: messages sent with the memory backend (tests read this list)
OUTBOX_MEMORY: list[EmailMessage] = []


def build_message(
    app: Flask, *, to: list[str], subject: str, body: str, event_id: str
) -> EmailMessage:
    """A plain-text email; ``event_id`` goes into a header receivers can deduplicate on."""
    msg = EmailMessage()
    msg["From"] = app.config["MAIL_FROM"]
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["X-Reviewapp-Event-Id"] = event_id
    msg.set_content(body)
    return msg


def send_message(app: Flask, msg: EmailMessage) -> None:
    """Send ``msg`` with the backend named by ``MAIL_BACKEND``.

    Raises:
        OSError / smtplib.SMTPException: when the SMTP server refuses (the caller retries).
        ValueError: for an unknown backend name.
    """
    backend = app.config["MAIL_BACKEND"]
    if backend == "console":
        # printed, not logged: the point of this backend is that a person running the demo sees it
        print(
            f"--- email to {msg['To']}: {msg['Subject']}\n{msg.get_content()}---",
            file=sys.stderr,
            flush=True,
        )
    elif backend == "memory":
        OUTBOX_MEMORY.append(msg)
    elif backend == "file":
        folder = Path(app.config.get("MAIL_FILE_DIR") or Path(app.instance_path) / "mail")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{msg['X-Reviewapp-Event-Id']}-{uuid.uuid4().hex[:8]}.eml").write_bytes(
            bytes(msg)
        )
    elif backend == "smtp":
        with smtplib.SMTP(app.config["SMTP_HOST"], app.config["SMTP_PORT"], timeout=30) as smtp:
            smtp.send_message(msg)
    else:
        raise ValueError(f"unknown MAIL_BACKEND {backend!r}")
