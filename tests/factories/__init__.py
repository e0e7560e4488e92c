"""factory_boy factories per domain, with traits (``submitted``, ``high_tier``, roles)."""

from __future__ import annotations

import itertools
from typing import Any

import factory
import factory.alchemy
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Status
from reviewapp.auth.models import Organization, Role, User

PASSWORD = "correct-horse-battery"
_HASH = PasswordHasher().hash(PASSWORD)  # hashed once: Argon2 is slow by design
_counter = itertools.count(1)


class _Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session = None
        sqlalchemy_session_persistence = "flush"


def bind_factories(session: Session) -> None:
    """Point every factory at ``session`` (called by the db fixtures)."""
    for f in (OrganizationFactory, UserFactory, ApplicationFactory):
        f._meta.sqlalchemy_session = session


class OrganizationFactory(_Base):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")


class UserFactory(_Base):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    password_hash = _HASH
    role = Role.developer
    organization = factory.SubFactory(OrganizationFactory)

    class Params:
        reviewer = factory.Trait(role=Role.reviewer)
        senior = factory.Trait(role=Role.senior_reviewer)
        admin = factory.Trait(role=Role.admin)


def content(**overrides: Any) -> dict[str, Any]:
    """A complete, low-risk application content dict."""
    base = {
        "title": "Meeting notes summarizer",
        "category": "search_summarization",
        "description": "Summarizes internal meeting transcripts into action items for our staff.",
        "benefits": "Saves staff time after meetings.",
        "end_users": ["internal_employees"],
        "domains": ["general"],
        "modalities": ["text"],
        "monthly_requests": 5000,
        "human_review_of_outputs": True,
        "safety_measures": "Outputs are reviewed by the meeting owner.",
        "product_url": "https://example.com/notes",
    }
    base.update(overrides)
    return base


HIGH_RISK = {
    "title": "Symptom checker",
    "category": "assistant_chatbot",
    "description": "Tells patients whether their symptoms need a doctor and suggests a clinical diagnosis.",
    "domains": ["health"],
    "end_users": ["consumers"],
    "human_review_of_outputs": False,
}


class ApplicationFactory(_Base):
    """A draft by default; ``submitted=True`` submits it through the real service (triage)."""

    class Meta:
        model = Application

    submitter = factory.SubFactory(UserFactory)
    organization_id = factory.LazyAttribute(lambda o: o.submitter.organization_id)
    status = Status.draft
    draft = factory.LazyFunction(content)

    class Params:
        high_tier = factory.Trait(draft=factory.LazyFunction(lambda: content(**HIGH_RISK)))

    @factory.post_generation
    def submitted(obj: Application, create: bool, extracted: Any, **kwargs: Any) -> None:  # noqa: N805
        if create and extracted:
            from reviewapp.applications.services import submit_application

            session = ApplicationFactory._meta.sqlalchemy_session
            submit_application(session, obj.submitter, obj)
            session.flush()


def publish_general_medium(session: Session) -> Any:
    """Publish a copy of the active ruleset with one more rule that raises 'general'
    applications to the medium tier (what re-triage tests change); returns the new version."""
    from sqlalchemy import select

    from reviewapp.triage import lab
    from reviewapp.triage.models import RulesetStatus, RulesetVersion
    from reviewapp.triage.services import create_ruleset_version, ruleset_document

    active = session.scalars(
        select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
    ).one()
    document = ruleset_document(active)
    document["rules"].append(
        {
            "key": "general-medium",
            "name": "General purpose goes to medium",
            "description": "",
            "condition": "'general' in domains",
            "actions": lab.parse_actions("raise_tier: medium"),
            "enabled": True,
            "examples": {},
        }
    )
    return create_ruleset_version(session, document, actor=None, publish=True)
