"""Safety requirements on a decision: reasons and parameters set by the reviewer, the
developer's answers (attestation, details, link) and the conditions of an approval.

Life of a requirement (DESIGN.md §3): a reviewer requests mitigations, naming requirements, each
with a reason and, where the catalogue defines them, parameters (e.g. minimum user age). The
developer answers every requirement, edits the application and resubmits. When the resubmitted
revision is approved, the attested requirements become the approval's *conditions*, with their
parameters, which the developer reads in the browser and the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Status
from reviewapp.audit.services import record_event
from reviewapp.auth.models import User
from reviewapp.db import utcnow
from reviewapp.errors import InvalidTransition, PermissionDenied, ValidationFailed
from reviewapp.limits import LIMITS, normalise_newlines
from reviewapp.policies.models import SafetyRequirement
from reviewapp.review.models import Decision, Outcome, RequiredSafetyRequirement

REASON_LIMIT = LIMITS["reason.text"]  # code points
DETAILS_LIMITS = (
    20,
    LIMITS["mitigation.details"],
)  # code points: an attestation explains how the requirement is met
LINK_LIMIT = LIMITS["mitigation.link"]


@dataclass
class RequirementInput:
    """What a reviewer sets on one required safety requirement."""

    reason: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # name -> raw value (str or int)


@dataclass
class AnswerInput:
    """The developer's answer to one required safety requirement."""

    attested: bool = False
    details: str = ""
    link: str = ""


def reason_field(key: str) -> str:
    """Form field name of a requirement's reason (``reason-<key>``)."""
    return f"reason-{key}"


def parameter_field(key: str, name: str) -> str:
    """Form field name of a requirement parameter (``param-<key>-<name>``)."""
    return f"param-{key}-{name}"


def clean_requirement_inputs(
    requirements: list[SafetyRequirement],
    inputs: dict[str, RequirementInput],
    *,
    reason_required: bool,
) -> tuple[dict[str, RequirementInput], dict[str, str]]:
    """Validate reasons and parameters for the chosen requirements.

    Args:
        requirements: the chosen catalogue rows.
        inputs: requirement key -> what the reviewer typed (missing keys = nothing typed).
        reason_required: True when requesting mitigations (each requirement says why).

    Returns:
        (key -> cleaned input with integer parameters, field name -> error message).
    """
    cleaned: dict[str, RequirementInput] = {}
    errors: dict[str, str] = {}
    for req in requirements:
        raw = inputs.get(req.key, RequirementInput())
        reason = normalise_newlines(raw.reason or "").strip()  # as the forms count
        if reason_required and not reason:
            errors[reason_field(req.key)] = f"Say why “{req.title}” is needed."
        elif len(reason) > REASON_LIMIT:
            errors[reason_field(req.key)] = (
                f"The reason is {len(reason)} characters long; the limit is {REASON_LIMIT}."
            )
        params: dict[str, int] = {}
        for spec in req.parameters or []:
            name = spec["name"]
            value = raw.parameters.get(name)
            text = str(value).strip() if value is not None else ""
            where = parameter_field(req.key, name)
            bounds = f"a whole number from {spec['min']} to {spec['max']}"
            if not text:
                errors[where] = f"Set {spec['label'].lower()} ({bounds})."
                continue
            try:
                number = int(text)
            except ValueError:
                errors[where] = f"{spec['label']} must be {bounds}."
                continue
            if not spec["min"] <= number <= spec["max"]:
                errors[where] = f"{spec['label']} must be {bounds}."
                continue
            params[name] = number
        cleaned[req.key] = RequirementInput(reason=reason, parameters=params)
    return cleaned, errors


def describe_parameters(requirement: RequiredSafetyRequirement) -> list[str]:
    """Human-readable parameter values, e.g. ``["Minimum user age: 18 years"]``."""
    specs = {s["name"]: s for s in requirement.safety_requirement.parameters or []}
    out = []
    for name, value in (requirement.parameters or {}).items():
        spec = specs.get(name, {"label": name, "unit": ""})
        unit = f" {spec['unit']}" if spec.get("unit") else ""
        out.append(
            f"{spec['label']}: {value:,}{unit}" if isinstance(value, int) else f"{name}: {value}"
        )
    return out


def mitigation_request(session: Session, application: Application) -> Decision | None:
    """The final request-mitigations decision the applicant must answer now, or None.

    That is the application's last final decision when the application is waiting for
    mitigations; after a resubmission it is the decision the new revision answers.
    """
    if application.last_decision_id is None:
        return None
    decision = session.get(Decision, application.last_decision_id)
    if decision is None or decision.outcome != Outcome.request_mitigations:
        return None
    return decision


def answer_requirements(
    session: Session, actor: User, application: Application, answers: dict[str, AnswerInput]
) -> list[RequiredSafetyRequirement]:
    """Save the developer's answers to the requested safety requirements (all of them at
    once; answers can be changed until the application is resubmitted).

    Args:
        answers: requirement key -> answer. Every requested requirement needs an answer that
            attests and explains (20–5000 code points); the link is optional (http/https).

    Returns:
        The answered requirement rows.

    Raises:
        PermissionDenied (not the applying organization), InvalidTransition (no mitigations are
        requested), ValidationFailed (fields ``attested-<key>``, ``details-<key>``, ``link-<key>``).
    """
    from reviewapp.applications.schema import unstorable_character
    from reviewapp.applications.services import can_edit

    if not can_edit(actor, application):
        raise PermissionDenied("Only the applying organization may answer mitigation requests.")
    decision = mitigation_request(session, application)
    if application.status != Status.mitigations_requested or decision is None:
        raise InvalidTransition("No mitigations are requested for this application.")
    errors: dict[str, str] = {}
    requested = {row.safety_requirement.key for row in decision.required_safety_requirements}
    for key in sorted(set(answers) - requested):
        errors[f"answers.{key}"] = "This safety requirement was not requested."
    cleaned: dict[str, dict[str, Any]] = {}
    low, high = DETAILS_LIMITS
    for row in decision.required_safety_requirements:
        key = row.safety_requirement.key
        given = answers.get(key, AnswerInput())
        details = normalise_newlines(given.details or "").strip()  # as the forms count
        link = (given.link or "").strip()
        if not given.attested:
            errors[f"attested-{key}"] = "Confirm that you meet this requirement."
        if len(details) < low:
            errors[f"details-{key}"] = f"Describe how you meet it in at least {low} characters."
        elif len(details) > high:
            errors[f"details-{key}"] = (
                f"The description is {len(details)} characters long; the limit is {high}."
            )
        elif (bad := unstorable_character(details)) is not None:
            errors[f"details-{key}"] = f"The description contains {bad}, which cannot be stored."
        if link:
            parts = urlsplit(link)
            if parts.scheme not in ("http", "https") or not parts.netloc or len(link) > LINK_LIMIT:
                errors[f"link-{key}"] = (
                    f"Give a full http(s) address of at most {LINK_LIMIT} characters, or leave it empty."
                )
        cleaned[key] = {"attested": bool(given.attested), "details": details, "link": link}
    if errors:
        raise ValidationFailed("Some answers are missing or incomplete.", fields=errors)
    now = utcnow().isoformat()
    application.updated_at = utcnow()  # a new version (ETag): a stale If-Match is refused
    for row in decision.required_safety_requirements:
        row.answer = {
            **cleaned[row.safety_requirement.key],
            "answered_by": actor.id,
            "answered_at": now,
        }
    session.flush()
    record_event(
        session,
        actor=actor,
        action="mitigations.answer",
        subject_type="application",
        subject_id=application.reference,
        after={"decision_id": decision.id, "answered": sorted(cleaned)},
    )
    return list(decision.required_safety_requirements)


def answers_changed(decision: Decision, answers: dict[str, AnswerInput]) -> bool:
    """True when ``answers`` (requirement key -> answer, as posted) differ from the answers
    saved on the mitigation request ``decision``: an attestation ticked or unticked, details or
    link changed (compared as :func:`answer_requirements` would store them), or a key that was
    not requested. A form that shows the saved answers and posts them back unchanged is not a
    change, so saving it records no answer event."""
    requested = {row.safety_requirement.key for row in decision.required_safety_requirements}
    if set(answers) - requested:
        return True
    for row in decision.required_safety_requirements:
        saved = row.answer or {}
        given = answers.get(row.safety_requirement.key, AnswerInput())
        if (
            bool(given.attested) != bool(saved.get("attested"))
            or normalise_newlines(given.details or "").strip() != (saved.get("details") or "")
            or (given.link or "").strip() != (saved.get("link") or "")
        ):
            return True
    return False


def unanswered(session: Session, application: Application) -> list[str]:
    """Titles of the requested requirements that have no attested answer yet (empty when the
    application may be resubmitted, or when no mitigations are requested)."""
    decision = mitigation_request(session, application)
    if decision is None or application.status != Status.mitigations_requested:
        return []
    return [
        r.safety_requirement.title
        for r in decision.required_safety_requirements
        if not (r.answer or {}).get("attested")
    ]


def carried_conditions(
    session: Session, application: Application
) -> list[RequiredSafetyRequirement]:
    """The attested requirements of the mitigation request that the current revision answers;
    an approval of that revision keeps them as conditions."""
    decision = mitigation_request(session, application)
    if decision is None or decision.revision_id == application.current_revision_id:
        return []
    return [r for r in decision.required_safety_requirements if (r.answer or {}).get("attested")]


def requirement_rows(session: Session, keys: list[str]) -> list[SafetyRequirement]:
    """Catalogue rows for ``keys`` in the given order.

    Raises:
        ValidationFailed: naming unknown keys.
    """
    found = {
        r.key: r
        for r in session.scalars(select(SafetyRequirement).where(SafetyRequirement.key.in_(keys)))
    }
    unknown = [k for k in keys if k not in found]
    if unknown:
        raise ValidationFailed(
            f"Unknown safety requirement(s): {', '.join(unknown)}",
            fields={"safety_requirements": "unknown"},
        )
    return [found[k] for k in dict.fromkeys(keys)]
