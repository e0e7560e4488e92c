"""The rules lab: drafts, validated editing, try/why-not, four-eyes publish, rollback, shadow mode,
re-triage after publish."""

from __future__ import annotations

import html
import re
import threading

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from reviewapp.applications.models import Application, Status
from reviewapp.audit.models import AuditEvent
from reviewapp.extensions import db as database
from reviewapp.triage import lab
from reviewapp.triage.engine import canonical_hash
from reviewapp.triage.models import Backtest, Rule, RulesetStatus, RulesetVersion, TriageResult
from reviewapp.triage.services import ruleset_document
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory, content


def admins(n: int = 2) -> list:
    staff = OrganizationFactory(name="Policy team")
    return [UserFactory(admin=True, organization=staff) for _ in range(n)]


def new_draft(client, number: int = 1) -> int:  # noqa: ANN001
    response = post_form(client, f"/admin/rulesets/{number}/draft", token_from="/admin/rulesets")
    assert response.status_code == 302
    return int(response.location.rsplit("/", 1)[-1])


GENERAL_MEDIUM = {
    "key": "general-medium",
    "name": "General purpose goes to medium",
    "condition": "'general' in domains",
    "actions": "raise_tier: medium\nadd_flag: general",
    "enabled": "y",
    "examples": "must_fire:\n  - {domains: [general]}\nmust_not_fire:\n  - {domains: [health]}\n",
}


def test_invalid_condition_is_refused_next_to_the_field_and_text_kept(login, db) -> None:
    client = login(admins(1)[0])
    number = new_draft(client)
    bad = {**GENERAL_MEDIUM, "condition": "'general' in domian"}
    response = post_form(
        client,
        f"/admin/rulesets/{number}/rules/new",
        bad,
        token_from=f"/admin/rulesets/{number}/rules/new",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "unknown field &#39;domian&#39;; did you mean &#39;domains&#39;?" in page
    assert "&#39;general&#39; in domian" in page  # what was typed is kept
    bad_action = {**GENERAL_MEDIUM, "actions": "raise_tier high"}
    response = post_form(
        client,
        f"/admin/rulesets/{number}/rules/new",
        bad_action,
        token_from=f"/admin/rulesets/{number}/rules/new",
    )
    assert response.status_code == 422 and b"line 1: expected" in response.data
    bad_example = {**GENERAL_MEDIUM, "examples": "must_fire:\n  - {domains: [health]}\n"}
    response = post_form(
        client,
        f"/admin/rulesets/{number}/rules/new",
        bad_example,
        token_from=f"/admin/rulesets/{number}/rules/new",
    )
    assert response.status_code == 422 and b"must_fire example #1 did not behave" in response.data
    regex = {**GENERAL_MEDIUM, "condition": "title =~ '(a+)+$'"}
    response = post_form(
        client,
        f"/admin/rulesets/{number}/rules/new",
        regex,
        token_from=f"/admin/rulesets/{number}/rules/new",
    )
    assert response.status_code == 422 and b"regular-expression operators" in response.data
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).one()
    db.refresh(draft)
    assert "general-medium" not in {r.key for r in draft.rules}


def test_edit_move_delete_and_keyword_lists_are_audited(login, db) -> None:
    client = login(admins(1)[0])
    number = new_draft(client)
    response = post_form(
        client,
        f"/admin/rulesets/{number}/rules/new",
        GENERAL_MEDIUM,
        token_from=f"/admin/rulesets/{number}/rules/new",
    )
    assert response.status_code == 302
    post_form(
        client,
        f"/admin/rulesets/{number}/rules/general-medium/move",
        {"direction": "up"},
        token_from="/admin/rulesets",
    )
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).one()
    db.refresh(draft)
    keys = [r.key for r in draft.rules]
    assert keys[-2] == "general-medium"
    response = post_form(
        client,
        f"/admin/rulesets/{number}/keyword-lists/new",
        {"name": "Bad Name", "phrases": "x"},
        token_from="/admin/rulesets",
    )
    assert response.status_code == 422 and b"keyword list name" in response.data
    response = post_form(
        client,
        f"/admin/rulesets/{number}/keyword-lists/new",
        {"name": "pets", "phrases": "cat*\ndog walker"},
        token_from="/admin/rulesets",
    )
    assert response.status_code == 302
    post_form(
        client,
        f"/admin/rulesets/{number}/rules/general-medium/delete",
        token_from="/admin/rulesets",
    )
    db.expire_all()
    assert "general-medium" not in {r.key for r in draft.rules}
    assert draft.keyword_lists["pets"]["phrases"] == ["cat*", "dog walker"]
    actions = db.scalars(
        select(AuditEvent.action).where(
            AuditEvent.subject_type == "ruleset_version", AuditEvent.subject_id == str(number)
        )
    ).all()
    assert {
        "ruleset.draft",
        "ruleset.rule_save",
        "ruleset.rule_move",
        "ruleset.keyword_list_save",
        "ruleset.rule_delete",
    } <= set(actions)
    # the published version itself never changes
    response = post_form(
        client, "/admin/rulesets/1/rules/new", GENERAL_MEDIUM, token_from="/admin/rulesets"
    )
    assert response.status_code == 302 and response.location.endswith("/admin/rulesets/1")


def test_try_shows_fired_rules_and_why_not(login, db) -> None:
    application = ApplicationFactory(submitted=True, high_tier=True)
    client = login(admins(1)[0])
    response = post_form(
        client,
        "/admin/rulesets/1/try",
        {"reference": application.reference},
        token_from="/admin/rulesets/1",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert application.reference in page and "<strong>yes</strong>" in page
    assert "domains = [&#34;health&#34;]" in page or 'domains = ["health"]' in page
    response = post_form(
        client,
        "/admin/rulesets/1/try",
        {"content": '{"title": "Weather bot", "domains": ["general"]}'},
        token_from="/admin/rulesets/1",
    )
    assert response.status_code == 200 and "no phrase matched" in response.get_data(as_text=True)
    response = post_form(
        client, "/admin/rulesets/1/try", {"content": '{"title": '}, token_from="/admin/rulesets/1"
    )
    assert response.status_code == 422 and b"line 1, column" in response.data
    assert b"Nothing was tried: Not valid JSON" in response.data  # trying saves nothing
    response = post_form(
        client,
        "/admin/rulesets/1/try",
        {"content": '{"domains": ["astrology"]}'},
        token_from="/admin/rulesets/1",
    )
    assert response.status_code == 422 and b"astrology" in response.data


def _prepare_publishable(client, db) -> int:  # noqa: ANN001
    number = new_draft(client)
    post_form(
        client,
        f"/admin/rulesets/{number}/rules/new",
        GENERAL_MEDIUM,
        token_from=f"/admin/rulesets/{number}/rules/new",
    )
    response = post_form(
        client, f"/admin/rulesets/{number}/backtests", token_from=f"/admin/rulesets/{number}"
    )
    assert response.status_code == 302
    backtest = db.scalars(select(Backtest).order_by(Backtest.id.desc())).first()
    db.refresh(backtest)
    assert backtest.status == "done"  # inline jobs in tests
    return number


def test_four_eyes_publish_retriages_unclaimed_and_keeps_claimed(login, db) -> None:
    first, second = admins(2)
    low_queued = ApplicationFactory(submitted=True)
    claimed = ApplicationFactory(submitted=True)
    reviewer = UserFactory(reviewer=True, organization=first.organization)
    claimed.status, claimed.claimed_by_id = Status.in_review, reviewer.id
    from reviewapp.db import utcnow

    claimed.lease_expires_at = utcnow()
    db.flush()
    assert low_queued.risk_tier == "low" and claimed.risk_tier == "low"
    c1, c2 = login(first), login(second)
    number = _prepare_publishable(c1, db)
    active = db.scalars(
        select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
    ).one()

    response = post_form(
        c1,
        f"/admin/rulesets/{number}/publish",
        {"active_id": active.id},
        token_from=f"/admin/rulesets/{number}",
        follow_redirects=True,
    )
    assert b"not approved in its current form" in response.data
    post_form(c1, f"/admin/rulesets/{number}/approve", token_from=f"/admin/rulesets/{number}")
    response = post_form(
        c1,
        f"/admin/rulesets/{number}/publish",
        {"active_id": active.id},
        token_from=f"/admin/rulesets/{number}",
        follow_redirects=True,
    )
    assert b"you approved it yourself" in response.data
    response = post_form(
        c2,
        f"/admin/rulesets/{number}/publish",
        {"active_id": active.id},
        token_from=f"/admin/rulesets/{number}",
        follow_redirects=True,
    )
    assert b"is now the active ruleset" in response.data
    db.expire_all()
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).one()
    assert draft.status == RulesetStatus.published and active.status == RulesetStatus.retired
    assert (
        db.scalar(
            select(func.count())
            .select_from(RulesetVersion)
            .where(RulesetVersion.status == RulesetStatus.published)
        )
        == 1
    )
    assert low_queued.risk_tier == "medium" and "general" in low_queued.flags  # re-triaged
    assert claimed.risk_tier == "low"  # kept: someone holds it
    note = db.scalars(
        select(TriageResult).where(
            TriageResult.revision_id == claimed.current_revision_id,
            TriageResult.ruleset_version_id == draft.id,
        )
    ).one()
    assert note.shadow and note.tier == "medium"

    # a stale page: publishing against an active version that has since changed is refused
    response = post_form(
        c2,
        "/admin/rulesets/1/rollback",
        {"active_id": active.id, "confirm": "y"},
        token_from="/admin/rulesets/1/rollback",
        follow_redirects=True,
    )
    assert b"The active ruleset changed while you were looking" in response.data
    response = post_form(
        c2,
        "/admin/rulesets/1/rollback",
        {"active_id": draft.id, "confirm": "y"},
        token_from="/admin/rulesets/1/rollback",
        follow_redirects=True,
    )
    assert b"Rolled back: v1 is active again" in response.data
    db.expire_all()
    assert active.status == RulesetStatus.published and draft.status == RulesetStatus.retired


def test_editing_after_approval_needs_a_new_approval(login, db) -> None:
    first, second = admins(2)
    c1 = login(first)
    number = _prepare_publishable(c1, db)
    post_form(c1, f"/admin/rulesets/{number}/approve", token_from=f"/admin/rulesets/{number}")
    post_form(
        c1,
        f"/admin/rulesets/{number}/rules/general-medium/move",
        {"direction": "up"},
        token_from="/admin/rulesets",
    )
    active = db.scalars(
        select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
    ).one()
    response = post_form(
        login(second),
        f"/admin/rulesets/{number}/publish",
        {"active_id": active.id},
        token_from="/admin/rulesets",
        follow_redirects=True,
    )
    assert b"no finished backtest of this exact content" in response.data
    assert b"not approved in its current form" in response.data


def test_shadow_mode_records_without_side_effects(app, login, db) -> None:
    client = login(admins(1)[0])
    number = new_draft(client)
    post_form(
        client,
        f"/admin/rulesets/{number}/rules/new",
        GENERAL_MEDIUM,
        token_from=f"/admin/rulesets/{number}/rules/new",
    )
    post_form(
        client,
        f"/admin/rulesets/{number}/shadow",
        {"enabled": "1"},
        token_from=f"/admin/rulesets/{number}",
    )
    application = ApplicationFactory(submitted=True)
    db.expire_all()
    assert (
        application.risk_tier == "low"
        and application.flags == []
        or "general" not in application.flags
    )
    shadow = db.scalars(
        select(TriageResult).where(
            TriageResult.revision_id == application.current_revision_id,
            TriageResult.shadow.is_(True),
        )
    ).one()
    assert shadow.tier == "medium"
    page = client.get(f"/admin/rulesets/{number}/shadow-results").get_data(as_text=True)
    assert application.reference in page and "differs" in page
    post_form(
        client,
        f"/admin/rulesets/{number}/shadow",
        {"enabled": "0"},
        token_from=f"/admin/rulesets/{number}",
    )
    other = ApplicationFactory(submitted=True)
    assert (
        db.scalar(
            select(func.count())
            .select_from(TriageResult)
            .where(TriageResult.revision_id == other.current_revision_id)
        )
        == 1
    )


def test_two_admins_publishing_at_once_one_wins(app, committed_db, is_postgres) -> None:
    if not is_postgres:
        pytest.skip("row locks need PostgreSQL (CI always has it)")
    first, second, approver = (
        UserFactory(admin=True, organization=OrganizationFactory()) for _ in range(3)
    )
    committed_db.commit()
    with app.app_context():
        session = database.session
        active = lab.active_ruleset(session)
        drafts = []
        for _ in range(2):
            draft = lab.start_draft(session, session.get(type(approver), approver.id), active)
            drafts.append(draft.number)
        database.commit()
        from reviewapp.triage.backtest import start_backtest

        for number in drafts:
            start_backtest(
                session, session.get(type(approver), approver.id), lab.get_version(session, number)
            )
            database.commit()
            lab.approve(
                session, session.get(type(approver), approver.id), lab.get_version(session, number)
            )
            database.commit()
        active_id = active.id
    results: list[str] = []
    barrier = threading.Barrier(2)

    def publish(user_id: int, number: int) -> None:
        with app.app_context():
            session = database.session
            user = session.get(type(approver), user_id)
            version = lab.get_version(session, number)
            barrier.wait()
            try:
                lab.publish(session, user, version, expected_active_id=active_id)
                database.commit()
                results.append("published")
            except Exception as exc:  # noqa: BLE001
                database.rollback()
                results.append(type(exc).__name__)

    threads = [
        threading.Thread(target=publish, args=(uid, n))
        for uid, n in zip((first.id, second.id), drafts, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["ConflictError", "published"]
    assert (
        committed_db.scalar(
            select(func.count())
            .select_from(RulesetVersion)
            .where(RulesetVersion.status == RulesetStatus.published)
        )
        == 1
    )
    _ = content, Application


def test_replaying_a_stored_triage_result_with_its_version_reproduces_it(app, db) -> None:
    from reviewapp.triage.services import compiled_ruleset

    applications = [
        ApplicationFactory(submitted=True),
        ApplicationFactory(submitted=True, high_tier=True),
    ]
    for application in applications:
        stored = db.scalars(
            select(TriageResult).where(TriageResult.revision_id == application.current_revision_id)
        ).one()
        version = db.get(RulesetVersion, stored.ruleset_version_id)
        assert version.content_hash is not None
        replay = compiled_ruleset(db, version).evaluate(application.current_revision.content)
        assert replay.tier == stored.tier and replay.queue == stored.queue
        assert [f.as_dict() for f in replay.fired] == stored.fired
        assert replay.flags == stored.flags and replay.errors == stored.errors


def test_admins_get_a_why_not_button_on_the_review_page(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    admin_page = login(admins(1)[0]).get(f"/review/{application.reference}").get_data(as_text=True)
    assert "Why not? Every rule of v1" in admin_page
    reviewer_page = login(UserFactory(reviewer=True, organization=OrganizationFactory())).get(
        f"/review/{application.reference}"
    )
    assert b"Why not?" not in reviewer_page.data


def test_rollback_and_shadowed_submissions_get_the_tier_of_the_active_version(login, db) -> None:
    first, second = admins(2)
    c1, c2 = login(first), login(second)
    number = new_draft(c1)
    post_form(
        c1, f"/admin/rulesets/{number}/rules/new", GENERAL_MEDIUM, token_from="/admin/rulesets"
    )
    post_form(
        c1, f"/admin/rulesets/{number}/shadow", {"enabled": "1"}, token_from="/admin/rulesets"
    )
    shadowed = ApplicationFactory(submitted=True)  # evaluated by the draft in shadow
    queued = ApplicationFactory(submitted=True)
    post_form(c1, f"/admin/rulesets/{number}/backtests", token_from="/admin/rulesets")
    post_form(c1, f"/admin/rulesets/{number}/approve", token_from="/admin/rulesets")
    v1 = db.scalars(select(RulesetVersion).where(RulesetVersion.number == 1)).one()
    post_form(
        c2, f"/admin/rulesets/{number}/publish", {"active_id": v1.id}, token_from="/admin/rulesets"
    )
    db.expire_all()
    assert shadowed.risk_tier == "medium" and queued.risk_tier == "medium"
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).one()
    response = post_form(
        c2,
        "/admin/rulesets/1/rollback",
        {"active_id": draft.id, "confirm": "y"},
        token_from="/admin/rulesets",
    )
    assert response.status_code == 302
    db.expire_all()
    assert shadowed.risk_tier == "low" and queued.risk_tier == "low"  # back to v1's tiers
    page = c2.get("/admin/rulesets/1").get_data(as_text=True)
    assert "Re-triage of unclaimed queued applications under this version: 2 of 2 done." in page


def test_kept_tier_note_is_shown_to_reviewers(login, db) -> None:
    first, second = admins(2)
    claimed = ApplicationFactory(submitted=True)
    reviewer = UserFactory(reviewer=True, organization=first.organization)
    c_rev = login(reviewer)
    post_form(c_rev, f"/review/{claimed.reference}/claim", token_from="/queue")
    c1 = login(first)
    number = _prepare_publishable(c1, db)
    post_form(c1, f"/admin/rulesets/{number}/approve", token_from="/admin/rulesets")
    v1 = db.scalars(select(RulesetVersion).where(RulesetVersion.number == 1)).one()
    post_form(
        login(second),
        f"/admin/rulesets/{number}/publish",
        {"active_id": v1.id},
        token_from="/admin/rulesets",
    )
    page = c_rev.get(f"/review/{claimed.reference}").get_data(as_text=True)
    assert f"The active ruleset v{number} would assign" in page


def test_lab_examples_refuse_aliases_and_wrong_types(login, db) -> None:
    client = login(admins(1)[0])
    number = new_draft(client)
    bomb = {**GENERAL_MEDIUM, "examples": "a: &a [x]\nmust_fire: [*a]\n"}
    response = post_form(
        client, f"/admin/rulesets/{number}/rules/new", bomb, token_from="/admin/rulesets"
    )
    assert response.status_code == 422 and b"aliases (*name) are not allowed" in response.data
    typed = {**GENERAL_MEDIUM, "examples": "must_fire:\n  - {monthly_requests: abc}\n"}
    response = post_form(
        client, f"/admin/rulesets/{number}/rules/new", typed, token_from="/admin/rulesets"
    )
    assert response.status_code == 422 and b"monthly_requests" in response.data
    deep = post_form(
        client,
        "/admin/rulesets/1/try",
        {"content": '{"a":' * 5000 + "1" + "}" * 5000},
        token_from="/admin/rulesets",
    )
    assert deep.status_code == 422


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (r"title != 'x\\' and title =~ '(a|a)*c'", "regular-expression operators"),
        (r'title != "x\\" and title =~ "(a|a)*c"', "regular-expression operators"),
        (
            r"title != '\\' and [[c for c in description.to_ary] for d in description.to_ary]"
            r".length > 0 and '\\' == ''",
            "comprehensions",
        ),
        (r"title != '\\' and $now != null and '\\' == ''", "built-in functions"),
        ("not " * 999 + "true", "nested more than 100 levels deep"),
        ("-" * 3990 + "1.0 > 0", "nested more than 100 levels deep"),
    ],
    ids=["regex-single", "regex-double", "comprehension", "builtin", "not-999", "minus-3990"],
)
def test_hidden_or_deeply_nested_conditions_are_refused_by_the_rule_form(
    login, db, condition: str, message: str
) -> None:
    client = login(admins(1)[0])
    number = new_draft(client)
    path = f"/admin/rulesets/{number}/rules/new"
    response = post_form(client, path, {**GENERAL_MEDIUM, "condition": condition}, token_from=path)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'id="condition"' in page and "is-invalid" in page  # the error sits by the field
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).one()
    db.refresh(draft)
    assert "general-medium" not in {r.key for r in draft.rules}


def _fingerprint(page: str) -> str:
    found = re.search(r'name="fingerprint" type="hidden" value="([0-9a-f]+)"', page)
    assert found is not None, "the rule form carries the fingerprint of the rule it shows"
    return found.group(1)


def test_a_stale_rule_edit_is_refused_and_nothing_is_overwritten(login, db) -> None:
    first_admin, second_admin = admins(2)
    first, second = login(first_admin), login(second_admin)
    number = new_draft(first)
    path = f"/admin/rulesets/{number}/rules/new"
    assert post_form(first, path, GENERAL_MEDIUM, token_from=path).status_code == 302
    edit = f"/admin/rulesets/{number}/rules/general-medium/edit"
    seen_first = _fingerprint(first.get(edit).get_data(as_text=True))
    seen_second = _fingerprint(second.get(edit).get_data(as_text=True))
    mine = {**GENERAL_MEDIUM, "condition": "'general' in domains and title != 'first'"}
    theirs = {**GENERAL_MEDIUM, "condition": "'general' in domains and title != 'second'"}
    saved = post_form(first, edit, {**mine, "fingerprint": seen_first}, token_from=edit)
    assert saved.status_code == 302
    stale = post_form(second, edit, {**theirs, "fingerprint": seen_second}, token_from=edit)
    assert stale.status_code == 409
    page = stale.get_data(as_text=True)
    assert "Someone else saved this rule after you opened it" in page
    assert "title != &#39;second&#39;" in page  # what they typed is kept
    assert _fingerprint(page) == seen_second  # saving the same form again is refused again
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).one()
    db.refresh(draft)
    rule = next(r for r in draft.rules if r.key == "general-medium")
    db.refresh(rule)
    assert rule.condition == "'general' in domains and title != 'first'"
    saves = db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "ruleset.rule_save", AuditEvent.subject_id == str(number)
        )
    ).all()
    assert [e.actor_id for e in saves] == [first_admin.id, first_admin.id]
    # opened again, the form shows the first admin's version and saves
    fresh = _fingerprint(second.get(edit).get_data(as_text=True))
    assert fresh != seen_second
    again = post_form(second, edit, {**theirs, "fingerprint": fresh}, token_from=edit)
    assert again.status_code == 302
    db.refresh(rule)
    assert rule.condition == "'general' in domains and title != 'second'"


def test_two_saves_of_the_same_rule_at_once_one_wins(
    app, committed_db, is_postgres, monkeypatch
) -> None:
    """Both saves pass the fingerprint check before either commits: the draft's lock_version
    still refuses the second, as a 409 form that keeps the text, not an error page."""
    if not is_postgres:
        pytest.skip("row locks need PostgreSQL (CI always has it)")
    first, second = (UserFactory(admin=True, organization=OrganizationFactory()) for _ in range(2))
    committed_db.commit()
    with app.app_context():
        session = database.session
        draft = lab.start_draft(
            session, session.get(type(first), first.id), lab.active_ruleset(session)
        )
        number = draft.number
        key = draft.rules[0].key
        seen = lab.rule_edit_fingerprint(draft.rules[0])
        database.commit()
    edit = f"/admin/rulesets/{number}/rules/{key}/edit"
    clients = [app.test_client(user=committed_db.get(type(first), u.id)) for u in (first, second)]
    pages = [c.get(edit).get_data(as_text=True) for c in clients]
    tokens = [re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', p) for p in pages]
    assert all(tokens) and all(_fingerprint(p) == seen for p in pages)
    base = {
        name: re.search(rf'name="{name}"[^>]*>([^<]*)</textarea>', pages[0], re.S)
        for name in ("actions", "examples")
    }
    barrier = threading.Barrier(2)
    validate = lab._validate_draft

    def validate_together(*args: object, **kwargs: object) -> None:
        validate(*args, **kwargs)  # type: ignore[arg-type]
        barrier.wait(timeout=30)  # both have read the rule and passed the fingerprint check

    monkeypatch.setattr(lab, "_validate_draft", validate_together)
    rule = committed_db.scalars(
        select(Rule).join(RulesetVersion).where(RulesetVersion.number == number, Rule.key == key)
    ).one()
    results: dict[str, tuple[int, str]] = {}

    def save(index: int) -> None:
        condition = f"({rule.condition}) and title != 'writer {index}'"
        response = clients[index].post(
            edit,
            data={
                "csrf_token": tokens[index].group(1),  # type: ignore[union-attr]
                "key": key,
                "name": rule.name,
                "description": rule.description,
                "condition": condition,
                "actions": html.unescape(base["actions"].group(1)),  # type: ignore[union-attr]
                "examples": html.unescape(base["examples"].group(1)),  # type: ignore[union-attr]
                "enabled": "y",
                "fingerprint": seen,
            },
        )
        results[condition] = (response.status_code, response.get_data(as_text=True))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(status for status, _ in results.values()) == [302, 409]
    winner = next(c for c, (status, _) in results.items() if status == 302)
    loser, (_, page) = next((c, r) for c, r in results.items() if r[0] == 409)
    assert "at the same moment" in page
    assert str(escape(loser)) in page  # what they typed is kept
    committed_db.expire_all()
    assert committed_db.get(Rule, rule.id).condition == winner


def test_a_draft_stored_with_a_hidden_regex_no_longer_runs(login, db) -> None:
    """A rule saved before the checker read conditions as rule-engine does: shadow triage skips
    the draft (no regex runs on the submission) and "try" says which rule to fix."""
    client = login(admins(1)[0])
    number = new_draft(client)
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).one()
    draft.rules.append(
        Rule(
            key="hidden-regex",
            position=len(draft.rules),
            name="Hidden regex",
            description="",
            condition=r"title != 'x\\' and title =~ '(a|a)*c'",
            actions=[{"type": "add_flag", "flag": "x"}],
            enabled=True,
            examples={},
        )
    )
    draft.content_hash = canonical_hash(ruleset_document(draft))
    db.flush()
    response = post_form(
        client, f"/admin/rulesets/{number}/shadow", {"enabled": "1"}, token_from="/admin/rulesets"
    )
    assert response.status_code == 302
    db.refresh(draft)
    assert draft.shadow
    application = ApplicationFactory(submitted=True, draft=content(title="a" * 24))
    assert application.status == Status.queued and application.risk_tier == "low"
    shadow = db.scalars(
        select(TriageResult).where(
            TriageResult.revision_id == application.current_revision_id,
            TriageResult.shadow.is_(True),
        )
    ).all()
    assert shadow == []
    tried = post_form(
        client,
        f"/admin/rulesets/{number}/try",
        {"content": '{"title": "aaaa"}'},
        token_from="/admin/rulesets",
    )
    assert tried.status_code == 422
    page = tried.get_data(as_text=True)
    assert "does not compile" in page and "hidden-regex" in page
