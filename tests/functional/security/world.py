"""A populated world for the security tests: two developer organizations and the staff, with
one object of every kind a route can name (applications in each state, decisions, notes,
appeals, mitigation answers, webhooks and deliveries, API tokens, clarification requests,
policy versions, response templates, a draft rule), every user-written text set to ``text``.

The XSS tests pass a payload as ``text``; the IDOR and CSRF tests use the default.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application
from reviewapp.auth.models import ApiToken, Organization, User
from reviewapp.db import utcnow
from reviewapp.policies.admin import create_response_template
from reviewapp.policies.clarifications import (
    ClarificationRequest,
    request_clarification,
    respond_to_clarification,
)
from reviewapp.policies.editor import publish_policy_version
from reviewapp.policies.models import PolicySection
from reviewapp.review.mitigations import AnswerInput, RequirementInput, answer_requirements
from reviewapp.review.services import DecisionInput, add_note, claim, decide, file_appeal
from reviewapp.triage import lab
from reviewapp.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory, content

ROLES = ["anonymous", "developer", "other_developer", "reviewer", "senior_reviewer", "admin"]


@dataclass
class World:
    """What :func:`build_world` made; ``users`` by role name (no "anonymous")."""

    users: dict[str, User]
    draft: Application
    queued: Application
    rejected: Application
    appealed: Application
    mitigations: Application
    endpoint: WebhookEndpoint
    delivery: WebhookDelivery
    token: ApiToken
    clarification: ClarificationRequest
    section_key: str
    template_key: str
    rule_key: str
    draft_ruleset: int
    extra: dict[str, Any] = field(default_factory=dict)

    def path_values(self) -> dict[str, Any]:
        """Values for the placeholders of a route (``<reference>``, ``<int:endpoint_id>`` …)."""
        return {
            "reference": self.queued.reference,
            "endpoint_id": self.endpoint.id,
            "delivery_id": self.delivery.id,
            "token_id": self.token.id,
            "request_id": self.clarification.id,
            "user_id": self.users["developer"].id,
            "key": self.section_key,
            "number": self.draft_ruleset,
            "version": 1,
        }


def _content(text: str, **extra: Any) -> dict[str, Any]:
    return content(
        title=f"Title {text}"[:200],
        description=f"Description of the use case {text}",
        benefits=f"Benefits {text}",
        safety_measures=f"Safety measures {text}",
        **extra,
    )


def _decide(session: Session, reviewer: User, application: Application, **kw: Any) -> None:
    claim(session, reviewer, application)
    decide(session, reviewer, application, DecisionInput(**kw))
    session.flush()


def build_world(app: Flask, session: Session, text: str = "plain text") -> World:
    """Create the objects (flushed, not committed: the test's transaction rolls back)."""
    with app.test_request_context():
        return _build(session, text)


def _build(session: Session, text: str) -> World:
    acme = OrganizationFactory(name=f"Acme {text}"[:200])
    other_org = OrganizationFactory(name=f"Other {text}"[:200])
    staff = OrganizationFactory(name=f"Staff {text}"[:200])
    users = {
        "developer": UserFactory(organization=acme, name=f"Dev {text}"[:200]),
        "other_developer": UserFactory(organization=other_org, name=f"Other {text}"[:200]),
        "reviewer": UserFactory(reviewer=True, organization=staff, name=f"Rev {text}"[:200]),
        "senior_reviewer": UserFactory(senior=True, organization=staff, name=f"Sen {text}"[:200]),
        "admin": UserFactory(admin=True, organization=staff, name=f"Adm {text}"[:200]),
    }
    dev, senior, admin = users["developer"], users["senior_reviewer"], users["admin"]
    draft = ApplicationFactory(submitter=dev, draft=_content(text))
    queued = ApplicationFactory(submitter=dev, draft=_content(text), submitted=True)
    rejected = ApplicationFactory(submitter=dev, draft=_content(text), submitted=True)
    _decide(
        session,
        senior,
        rejected,
        outcome="reject",
        citations=["usage-1.5"],
        template_key="reject-prohibited",
        safety_requirements=[],
        reviewer_note=f"Reviewer note {text}",
        rationale=f"Rationale {text}",
    )
    appealed = ApplicationFactory(submitter=dev, draft=_content(text), submitted=True)
    _decide(
        session,
        senior,
        appealed,
        outcome="reject",
        citations=["usage-1.5"],
        template_key="reject-prohibited",
        safety_requirements=[],
        reviewer_note=f"Reviewer note {text}",
        rationale=f"Rationale {text}",
    )
    file_appeal(session, dev, appealed, f"Appeal statement, long enough to count: {text}")
    mitigations = ApplicationFactory(submitter=dev, draft=_content(text), submitted=True)
    _decide(
        session,
        users["reviewer"],
        mitigations,
        outcome="request_mitigations",
        citations=["usage-2.1"],
        template_key="mitigations-standard",
        safety_requirements=["age-assurance"],
        reviewer_note=f"Reviewer note {text}",
        rationale=f"Rationale {text}",
        requirements={
            "age-assurance": RequirementInput(
                reason=f"Reason {text}", parameters={"minimum_user_age": "16"}
            )
        },
    )
    answer_requirements(
        session,
        dev,
        mitigations,
        {
            "age-assurance": AnswerInput(
                attested=True,
                details=f"Every user passes an ID check before first use. {text}",
                link="",
            )
        },
    )
    add_note(session, users["reviewer"], queued, f"Internal note {text}")

    endpoint = WebhookEndpoint(
        organization_id=acme.id,
        url="http://127.0.0.1:9/hook",
        secret="whsec_security",
        event_types=["*"],
        created_by_id=dev.id,
    )
    session.add(endpoint)
    session.flush()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id="evt-sec-1",
        event_type="decision",
        payload={"id": "evt-sec-1"},
        status="failed",
        last_error=f"Error {text}"[:1000],
        retry_until=utcnow(),
    )
    session.add(delivery)
    token, _clear = ApiToken.issue(dev, name=f"Token {text}"[:100], scopes="read write")
    session.add(token)
    session.flush()

    section = session.scalars(select(PolicySection).where(PolicySection.key == "usage-1.1")).one()
    publish_policy_version(
        session,
        admin,
        section,
        text=f"Policy text {text}\n\n[a link](javascript:alert(1)) <b onclick=alert(1)>x</b>",
        effective_date=dt.date.today(),
        change_summary=f"Summary {text}"[:500],
        base_version=None,
    )
    clarification = request_clarification(
        session,
        actor=dev,
        section=section,
        version=section.current,
        kind="clarification",
        message=f"What counts as consent here? {text}",
    )
    respond_to_clarification(
        session,
        actor=admin,
        request_id=clarification.id,
        status="answered",
        answer=f"Answer {text}",
    )
    template = create_response_template(
        session,
        admin,
        key="security-template",
        title=f"Template {text}"[:200],
        outcome="approve",
        body=f"Hello {{{{ application.reference }}}}. {text}",
    )
    draft_ruleset = lab.start_draft(
        session, admin, lab.get_version(session, 1), description=f"Draft {text}"
    )
    source_rule = draft_ruleset.rules[0]
    lab.save_rule(
        session,
        admin,
        draft_ruleset,
        original_key=source_rule.key,
        data={
            "key": source_rule.key,
            "name": f"Rule {text}"[:200],
            "description": f"Rule description {text}",
            "condition": source_rule.condition,
            "actions": source_rule.actions,
            "enabled": True,
            "examples": [],
        },
    )
    session.flush()
    return World(
        users=users,
        draft=draft,
        queued=queued,
        rejected=rejected,
        appealed=appealed,
        mitigations=mitigations,
        endpoint=endpoint,
        delivery=delivery,
        token=token,
        clarification=clarification,
        section_key=section.key,
        template_key=template.key,
        rule_key=source_rule.key,
        draft_ruleset=draft_ruleset.number,
    )


def organization_of(session: Session, user: User) -> Organization:
    return session.get(Organization, user.organization_id)  # type: ignore[return-value]
