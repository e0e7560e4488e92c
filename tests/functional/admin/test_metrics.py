"""Metrics dashboard (issue #6): every metric computed from a small fixture with known
timestamps matches the value worked out by hand; filters, CSV downloads and access.

The fixture lives in March 2020 so nothing else in the test database falls in its period.
Period under test: 2020-03-02 to 2020-03-04 (UTC, inclusive). Sections S1, S2, S3; reviewers
Alice (R1) and Bob (R2). Tier SLA targets: low 72 h, medium 48 h, high 24 h (business seconds).

=====  ======  ================  ==========================================================
app    tier    submitted (UTC)   what happens
=====  ======  ================  ==========================================================
A1     low     03-02 09:00       automatic approve 03-02 09:06; SLA 0 of 259200 s
A2     low     03-02 10:00       qa-sample; R1 approve 03-03 10:00; SLA 28800 of 259200
A3     low     03-03 08:00       qa-sample; R2 reject 03-04 20:00 citing S1; SLA 300000 of 259200
A4     medium  03-02 12:00       R1 request mitigations 03-03 00:00 citing S1, S2; SLA 172800 of
                                 172800 (equal: attained)
A5     medium  03-03 12:00       R2 first approval (not final) 03-04 00:00 citing S2; R1 final
                                 approve 03-04 12:00 citing S2; SLA 180000 of 172800
A6     high    03-04 06:00       R1 reject 03-04 08:00 citing S1, S3; appeal overturned by R2
                                 03-04 18:00 (resolution: approve citing S3); SLA 7200 of 86400
A7     high    03-01 23:00       R2 reject 03-02 01:00 citing S3; appeal upheld by R1 03-02 12:00
                                 (resolution: reject, no citation); SLA 90000 of 86400
A8     medium  03-04 23:30       open (queued) in queue metrics-q-a since 03-04 23:30
A9     high    03-05 08:00       open (in review) in queue metrics-q-b since 03-09 12:00
A10    low     never (draft)
A11    medium  02-20 09:00       R1 approve 02-21 09:00 (outside the period)
=====  ======  ================  ==========================================================

Policy feedback: S1 edge case on A3 (03-03), S1 unclear on A6 (03-04), S2 unclear without an
application (03-02), S2 edge case 02-15 (outside).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask_login import FlaskLoginClient
from sqlalchemy.orm import Session

from reviewapp import create_app
from reviewapp.applications.models import Application, Revision, Status
from reviewapp.auth.models import User
from reviewapp.extensions import db as database
from reviewapp.metrics import queries
from reviewapp.metrics.queries import Period
from reviewapp.policies.models import PolicyFeedback, PolicySection, PolicySectionVersion
from reviewapp.review.models import Appeal, Citation, Decision
from tests.factories import ApplicationFactory, UserFactory, content

PERIOD = Period(dt.date(2020, 3, 2), dt.date(2020, 3, 4))
NOW = dt.datetime(2020, 3, 10, tzinfo=dt.UTC)
ARGS = "from=2020-03-02&to=2020-03-04"
HOUR = 3600


@pytest.fixture(scope="module")
def app(app: Flask, database_url: str) -> Iterator[Flask]:
    """The session app if create_app registers ``metrics``, else one that does (the session
    app has served requests, so blueprints can no longer be added to it)."""
    if "metrics" in app.blueprints:
        yield app
        return
    from reviewapp.metrics.views import bp

    application = create_app("testing", DATABASE_URL=database_url, REDIS_URL=None)
    application.register_blueprint(bp)
    application.test_client_class = FlaskLoginClient
    yield application
    database.state(application).engine.dispose()
    database.state(app).engine.dispose()


def at(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2020, month, day, hour, minute, tzinfo=dt.UTC)


@dataclass
class Fixture:
    alice: User
    bob: User
    sections: dict[str, PolicySection]


class Builder:
    """Inserts applications, decisions and appeals directly, with chosen timestamps."""

    def __init__(self, db: Session, submitter: User) -> None:
        self.db = db
        self.submitter = submitter

    def application(
        self,
        tier: str,
        submitted_at: dt.datetime | None,
        *,
        queue: str | None = None,
        target: int | None = None,
        consumed: int = 0,
        status: str = Status.submitted,
        queued_at: dt.datetime | None = None,
    ) -> Application:
        application = ApplicationFactory(
            submitter=self.submitter,
            status=status,
            risk_tier=tier,
            queue=queue,
            queued_at=queued_at,
            submitted_at=submitted_at,
            sla_target_seconds=target,
            sla_consumed_seconds=consumed,
        )
        if submitted_at is not None:
            revision = Revision(
                application_id=application.id,
                number=1,
                content=content(),
                submitted_by_id=self.submitter.id,
                submitted_at=submitted_at,
            )
            self.db.add(revision)
            self.db.flush()
            application.current_revision_id = revision.id
            self.db.flush()
        return application

    def decide(
        self,
        application: Application,
        outcome: str,
        decided_at: dt.datetime,
        reviewer: User | None,
        sections: tuple[PolicySection, ...] = (),
        *,
        final: bool = True,
        status: str | None = None,
    ) -> Decision:
        assert application.current_revision_id is not None
        decision = Decision(
            application_id=application.id,
            revision_id=application.current_revision_id,
            outcome=outcome,
            reviewer_id=reviewer.id if reviewer else None,
            message="m",
            final=final,
            approval_step=2 if reviewer and not final else 1,
            decided_at=decided_at,
        )
        decision.citations = [
            Citation(policy_section_version_id=s.versions[0].id) for s in sections
        ]
        self.db.add(decision)
        self.db.flush()
        if final:
            application.last_decision_id = decision.id
            application.status = (
                status
                or {
                    "approve": Status.approved,
                    "reject": Status.rejected,
                    "request_mitigations": Status.mitigations_requested,
                }[outcome]
            )
            self.db.flush()
        return decision

    def appeal(
        self,
        application: Application,
        decision: Decision,
        outcome: str,
        decided_at: dt.datetime,
        resolution: Decision,
        decided_by: User,
    ) -> None:
        assert application.current_revision_id is not None
        self.db.add(
            Appeal(
                application_id=application.id,
                revision_id=application.current_revision_id,
                decision_id=decision.id,
                statement="please",
                created_by_id=self.submitter.id,
                created_at=decided_at - dt.timedelta(hours=1),
                outcome=outcome,
                resolution_id=resolution.id,
                decided_by_id=decided_by.id,
                decided_at=decided_at,
            )
        )
        self.db.flush()


@pytest.fixture()
def fx(db: Session) -> Fixture:
    alice = UserFactory(reviewer=True, name="Alice Metrics")
    bob = UserFactory(senior=True, name="Bob Metrics")
    sections = {}
    for n in (1, 2, 3):
        section = PolicySection(key=f"metrics-s{n}", number=f"§9.{n}", title=f"Metrics {n}")
        section.versions = [
            PolicySectionVersion(version=1, text="t", effective_date=dt.date(2019, 1, 1))
        ]
        db.add(section)
        sections[f"S{n}"] = section
    db.flush()
    s1, s2, s3 = sections["S1"], sections["S2"], sections["S3"]
    b = Builder(db, UserFactory())
    low, medium, high = 72 * HOUR, 48 * HOUR, 24 * HOUR

    a1 = b.application("low", at(2, 9), target=low, consumed=0)
    b.decide(a1, "approve", at(2, 9, 6), None)
    a2 = b.application("low", at(2, 10), queue="qa-sample", target=low, consumed=28800)
    b.decide(a2, "approve", at(3, 10), alice)
    a3 = b.application("low", at(3, 8), queue="qa-sample", target=low, consumed=300000)
    b.decide(a3, "reject", at(4, 20), bob, (s1,))
    a4 = b.application("medium", at(2, 12), target=medium, consumed=172800)
    b.decide(a4, "request_mitigations", at(3, 0), alice, (s1, s2))
    a5 = b.application("medium", at(3, 12), target=medium, consumed=180000)
    b.decide(a5, "approve", at(4, 0), bob, (s2,), final=False)
    b.decide(a5, "approve", at(4, 12), alice, (s2,))
    a6 = b.application("high", at(4, 6), target=high, consumed=7200)
    rejected6 = b.decide(a6, "reject", at(4, 8), alice, (s1, s3))
    resolved6 = b.decide(a6, "approve", at(4, 18), bob, (s3,))
    b.appeal(a6, rejected6, "overturned", at(4, 18), resolved6, bob)
    a7 = b.application("high", at(1, 23), target=high, consumed=90000)
    rejected7 = b.decide(a7, "reject", at(2, 1), bob, (s3,))
    resolved7 = b.decide(a7, "reject", at(2, 12), alice)
    b.appeal(a7, rejected7, "upheld", at(2, 12), resolved7, alice)
    b.application(
        "medium", at(4, 23, 30), queue="metrics-q-a", status=Status.queued, queued_at=at(4, 23, 30)
    )
    b.application(
        "high", at(5, 8), queue="metrics-q-b", status=Status.in_review, queued_at=at(9, 12)
    )
    b.application("low", None, status=Status.draft)
    a11 = b.application("medium", at(20, 9, month=2), target=medium)
    b.decide(a11, "approve", at(21, 9, month=2), alice)

    db.add_all(
        [
            PolicyFeedback(
                policy_section_id=s1.id,
                application_id=a3.id,
                author_id=bob.id,
                kind="edge_case",
                comment="c",
                created_at=at(3, 9),
            ),
            PolicyFeedback(
                policy_section_id=s1.id,
                application_id=a6.id,
                author_id=alice.id,
                kind="unclear",
                comment="c",
                created_at=at(4, 9),
            ),
            PolicyFeedback(
                policy_section_id=s2.id,
                author_id=alice.id,
                kind="unclear",
                comment="c",
                created_at=at(2, 9),
            ),
            PolicyFeedback(
                policy_section_id=s2.id,
                author_id=alice.id,
                kind="edge_case",
                comment="c",
                created_at=at(15, 9, month=2),
            ),
        ]
    )
    db.flush()
    return Fixture(alice, bob, sections)


# --- the queries, against hand-computed values -------------------------------------------------


def test_intake_per_day_by_tier(db: Session, fx: Fixture) -> None:
    rows = queries.intake_per_day(db, PERIOD)
    # A7 (03-01), A9 (03-05), A10 (never) and A11 (02-20) fall outside the period.
    # 03-02: A1, A2 low; A4 medium. 03-03: A3 low; A5 medium. 03-04: A6 high; A8 medium.
    assert {(r["day"].day, r["tier"]): r["applications"] for r in rows if r["applications"]} == {
        (2, "low"): 2,
        (2, "medium"): 1,
        (3, "low"): 1,
        (3, "medium"): 1,
        (4, "medium"): 1,
        (4, "high"): 1,
    }
    tiers = queries.tier_names(db)
    assert len(rows) == 3 * len(tiers)  # every day x every tier, zeros included
    medium = queries.intake_per_day(db, PERIOD, "medium")
    assert [(r["day"].day, r["applications"]) for r in medium] == [(2, 1), (3, 1), (4, 1)]


def test_queue_depth_and_age_are_a_snapshot(db: Session, fx: Fixture) -> None:
    depth = [r for r in queries.queue_depth(db, NOW) if r["queue"].startswith("metrics-q-")]
    # A8 waits since 03-04 23:30: 03-10 00:00 minus that = 5 days 0.5 h = 120.5 h; A9 12 h.
    assert depth == [
        {"queue": "metrics-q-a", "applications": 1, "oldest_hours": 120.5},
        {"queue": "metrics-q-b", "applications": 1, "oldest_hours": 12.0},
    ]
    ages = {r["age"]: r["applications"] for r in queries.queue_age(db, NOW)}
    assert ages == {
        "under 1 day": 1,  # A9, 12 h
        "1-3 days": 0,
        "3-7 days": 1,  # A8, 120.5 h
        "7-14 days": 0,
        "14 days or more": 0,
    }
    assert [r["applications"] for r in queries.queue_age(db, NOW, "high")] == [1, 0, 0, 0, 0]


def test_sla_attainment_per_tier(db: Session, fx: Fixture) -> None:
    rows = {r["tier"]: r for r in queries.sla_attainment(db, PERIOD)}
    # low: A1 (0 <= 259200), A2 (28800 <= 259200) attained, A3 (300000 > 259200) missed: 2/3.
    assert rows["low"] == {"tier": "low", "decided": 3, "attained": 2, "attainment": 0.6667}
    # medium: A4 (172800 = 172800) attained, A5 (180000 > 172800) missed; A11 outside: 1/2.
    assert rows["medium"] == {"tier": "medium", "decided": 2, "attained": 1, "attainment": 0.5}
    # high: A6 (7200 <= 86400) attained, A7 (90000 > 86400) missed: 1/2.
    assert rows["high"] == {"tier": "high", "decided": 2, "attained": 1, "attainment": 0.5}
    assert rows["prohibited"]["attainment"] is None
    assert queries.sla_attainment(db, PERIOD, "low") == [rows["low"]]


def test_time_to_decision_median_and_p90(db: Session, fx: Fixture) -> None:
    rows = {r["tier"]: r for r in queries.time_to_decision(db, PERIOD)}
    # low: A1 6 min = 0.1 h, A2 24 h, A3 36 h -> median 24; p90 rank ceil(0.9*3) = 3 -> 36.
    assert rows["low"] == {"tier": "low", "decisions": 3, "median_hours": 24.0, "p90_hours": 36.0}
    # medium: A4 12 h, A5 24 h (final only) -> median (12+24)/2 = 18; p90 rank 2 -> 24.
    assert rows["medium"] == {
        "tier": "medium",
        "decisions": 2,
        "median_hours": 18.0,
        "p90_hours": 24.0,
    }
    # high: A6 06:00->08:00 = 2 h, A7 23:00->01:00 = 2 h (appeal resolutions left out).
    assert rows["high"] == {"tier": "high", "decisions": 2, "median_hours": 2.0, "p90_hours": 2.0}
    assert rows["prohibited"] == {
        "tier": "prohibited",
        "decisions": 0,
        "median_hours": None,
        "p90_hours": None,
    }


def test_percentile_is_nearest_rank() -> None:
    assert queries.percentile([], 0.9) is None
    assert queries.percentile([5.0], 0.9) == 5.0
    assert queries.percentile([float(v) for v in range(1, 11)], 0.9) == 9.0  # rank 9 of 10
    assert queries.percentile([float(v) for v in range(1, 12)], 0.9) == 10.0  # rank ceil(9.9)


def test_decision_mix(db: Session, fx: Fixture) -> None:
    rows = {r["outcome"]: r for r in queries.decision_mix(db, PERIOD)}
    # final, not appeal resolutions: A1 auto approve; A2, A5 approve; A4 mitigations;
    # A3, A6, A7 reject = 7 decisions.
    assert rows["approve"] == {
        "outcome": "approve",
        "human": 2,
        "automatic": 1,
        "total": 3,
        "share": 0.4286,  # 3/7
    }
    assert rows["request_mitigations"]["total"] == 1
    assert rows["request_mitigations"]["share"] == 0.1429  # 1/7
    assert rows["reject"] == {
        "outcome": "reject",
        "human": 3,
        "automatic": 0,
        "total": 3,
        "share": 0.4286,
    }
    one_day = {
        r["outcome"]: r["total"] for r in queries.decision_mix(db, Period(*[PERIOD.start] * 2))
    }
    assert one_day == {"approve": 1, "request_mitigations": 0, "reject": 1}  # A1, A7
    medium = {r["outcome"]: r["share"] for r in queries.decision_mix(db, PERIOD, "medium")}
    assert medium == {"approve": 0.5, "request_mitigations": 0.5, "reject": 0.0}  # A5, A4


def test_reviewer_throughput(db: Session, fx: Fixture) -> None:
    rows = [r for r in queries.reviewer_throughput(db, PERIOD) if "Metrics" in r["reviewer"]]
    # Alice: A2, A4, A5 final, A6 reject, A7 resolution = 5 (A11 outside);
    # Bob: A3, A5 first approval (not final), A6 resolution, A7 reject = 4, 3 final.
    assert [(r["reviewer"], r["decisions"], r["final_decisions"]) for r in rows] == [
        ("Alice Metrics", 5, 5),
        ("Bob Metrics", 4, 3),
    ]
    medium = queries.reviewer_throughput(db, PERIOD, "medium")
    assert [(r["reviewer"], r["decisions"], r["final_decisions"]) for r in medium] == [
        ("Alice Metrics", 2, 2),  # A4, A5 final
        ("Bob Metrics", 1, 0),  # A5 first approval
    ]


def test_qa_agreement(db: Session, fx: Fixture) -> None:
    # qa-sample: A2 approved, A3 rejected -> 1/2 agree with the fast track.
    assert queries.qa_agreement(db, PERIOD) == [
        {"tier": "low", "decided": 2, "approved": 1, "agreement": 0.5}
    ]
    assert queries.qa_agreement(db, PERIOD, "medium") == [
        {"tier": "medium", "decided": 0, "approved": 0, "agreement": None}
    ]


def test_appeal_overturns_per_section(db: Session, fx: Fixture) -> None:
    # A6's appealed reject cited S1, S3 and was overturned; A7's cited S3 and was upheld.
    # S3: 1 of 2 overturned; S1: 1 of 1.
    assert [
        (r["section_key"], r["appeals"], r["overturned"], r["overturn_rate"])
        for r in queries.appeal_overturns(db, PERIOD)
    ] == [("metrics-s3", 2, 1, 0.5), ("metrics-s1", 1, 1, 1.0)]
    assert queries.appeal_overturns(db, PERIOD, "low") == []


def test_most_cited_sections(db: Session, fx: Fixture) -> None:
    # final decisions: S1 by A3, A4, A6 = 3; S3 by A6, A6's resolution, A7 = 3; S2 by A4 and
    # A5's final approval = 2 (A5's first approval is not final).
    assert [
        (r["section_key"], r["section"], r["citations"]) for r in queries.cited_sections(db, PERIOD)
    ] == [
        ("metrics-s1", "§9.1 Metrics 1", 3),
        ("metrics-s3", "§9.3 Metrics 3", 3),
        ("metrics-s2", "§9.2 Metrics 2", 2),
    ]
    assert [r["citations"] for r in queries.cited_sections(db, PERIOD, "medium")] == [2, 1]


def test_policy_feedback_per_section(db: Session, fx: Fixture) -> None:
    rows = [
        (r["section_key"], r["edge_case"], r["unclear"], r["total"])
        for r in queries.policy_feedback(db, PERIOD)
    ]
    # S1: edge case (A3) + unclear (A6); S2: unclear (no application); S2's 02-15 is outside.
    assert [r for r in rows if r[0].startswith("metrics-")] == [
        ("metrics-s1", 1, 1, 2),
        ("metrics-s2", 0, 1, 1),
    ]
    high = [(r["section_key"], r["total"]) for r in queries.policy_feedback(db, PERIOD, "high")]
    assert high == [("metrics-s1", 1)]  # A6's only


# --- the pages ---------------------------------------------------------------------------------


def admin() -> User:
    return UserFactory(admin=True)


def svg_of(page: str, key: str) -> str:
    section = page.split(f'id="chart-{key}"', 1)[1]
    match = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', section)
    assert match
    return base64.b64decode(match.group(1)).decode()


def test_dashboard_shows_every_chart_with_values_printed(login, fx: Fixture) -> None:  # noqa: ANN001
    response = login(admin()).get(f"/admin/metrics?{ARGS}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    from reviewapp.metrics.charts import CHARTS

    for key in CHARTS:
        assert f'id="chart-{key}"' in page
        assert f"/admin/metrics/{key}.csv?from=2020-03-02&amp;to=2020-03-04" in page
    sla = svg_of(page, "sla")
    assert "<script" not in sla
    assert "67%" in sla and "50%" in sla  # printed on the bars, no hovering needed
    assert "66.7%" in page  # the numbers table
    assert "<svg" not in page and "<script>" not in page  # CSP: images only, no inline script
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_filters_default_to_the_last_30_days(login) -> None:  # noqa: ANN001
    page = login(admin()).get("/admin/metrics").get_data(as_text=True)
    today = dt.datetime.now(dt.UTC).date()
    assert f'value="{(today - dt.timedelta(days=29)).isoformat()}"' in page
    assert f'value="{today.isoformat()}"' in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2020-13-01&to=2020-03-04", "Enter a date as YYYY-MM-DD"),
        ("from=2020-03-05&to=2020-03-04", "Choose a start on or before the end date."),
        ("from=2018-01-01&to=2020-03-04", "Choose a range of at most 366 days"),
        ("tier=bogus", "Choose one of the listed tiers."),
    ],
)
def test_invalid_filters_show_an_error_next_to_the_field(login, query: str, message: str) -> None:  # noqa: ANN001
    client = login(admin())
    response = client.get(f"/admin/metrics?{query}")
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert "is-invalid" in response.get_data(as_text=True)
    assert client.get(f"/admin/metrics/sla.csv?{query}").status_code == 400


def read_csv(response) -> list[list[str]]:  # noqa: ANN001
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_csv_downloads(login, fx: Fixture) -> None:  # noqa: ANN001
    client = login(admin())
    response = client.get(f"/admin/metrics/sla.csv?{ARGS}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert (
        'filename="metrics-sla-2020-03-02-2020-03-04.csv"'
        in response.headers["Content-Disposition"]
    )
    assert read_csv(response) == [
        ["tier", "decided", "attained", "attainment"],
        ["low", "3", "2", "0.6667"],
        ["medium", "2", "1", "0.5"],
        ["high", "2", "1", "0.5"],
        ["prohibited", "0", "0", ""],
    ]
    medium = read_csv(client.get(f"/admin/metrics/time-to-decision.csv?{ARGS}&tier=medium"))
    assert medium == [
        ["tier", "decisions", "median_hours", "p90_hours"],
        ["medium", "2", "18.0", "24.0"],
    ]
    intake = read_csv(client.get(f"/admin/metrics/intake.csv?{ARGS}&tier=low"))
    assert intake == [
        ["day", "tier", "applications"],
        ["2020-03-02", "low", "2"],
        ["2020-03-03", "low", "1"],
        ["2020-03-04", "low", "0"],
    ]
    for key in ("queue-depth", "queue-age", "decision-mix", "throughput", "qa-agreement"):
        assert client.get(f"/admin/metrics/{key}.csv?{ARGS}").status_code == 200
    assert client.get("/admin/metrics/nope.csv").status_code == 404


def test_csv_neutralises_formulas(login, db: Session, fx: Fixture) -> None:  # noqa: ANN001
    fx.alice.name = "=HYPERLINK(1)"
    db.flush()
    rows = read_csv(login(admin()).get(f"/admin/metrics/throughput.csv?{ARGS}"))
    assert ["'=HYPERLINK(1)", fx.alice.email, "5", "5"] in rows


@pytest.mark.parametrize("role", ["developer", "reviewer", "senior"])
def test_only_admins_get_in(login, client, role: str) -> None:  # noqa: ANN001
    user = UserFactory(**({} if role == "developer" else {role: True}))
    for path in ("/admin/metrics", "/admin/metrics/sla.csv"):
        assert login(user).get(path).status_code == 403
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_far_future_dates_are_refused_with_a_message_not_a_500(login) -> None:  # noqa: ANN001
    """9999-12-31 has no day after it: the dashboard, its CSV and the audit filter say so."""
    from tests.factories import UserFactory

    admin = login(UserFactory(admin=True))
    page = admin.get("/admin/metrics?from=9999-12-31&to=9999-12-31")
    assert page.status_code == 200 and "years up to 9000" in page.get_data(as_text=True)
    audit = admin.get("/admin/audit?until=9999-12-31")
    assert audit.status_code == 200 and "years up to 9000" in audit.get_data(as_text=True)
    csv = admin.get("/admin/metrics/intake.csv?from=9999-12-31&to=9999-12-31")
    assert csv.status_code in {200, 400}


def test_tiers_have_their_badge_colours_in_the_charts() -> None:
    import datetime as dt

    from reviewapp.metrics.charts import CHARTS, TIER_COLOURS

    intake = CHARTS["intake"].draw(
        [
            {"day": dt.date(2026, 11, 2), "tier": "low", "applications": 4},
            {"day": dt.date(2026, 11, 2), "tier": "prohibited", "applications": 1},
        ],
        "Intake",
    )
    sla = CHARTS["sla"].draw(
        [
            {"tier": "low", "decided": 2, "attained": 2, "attainment": 1.0},
            {"tier": "high", "decided": 2, "attained": 1, "attainment": 0.5},
        ],
        "SLA",
    )
    for chart, tiers in ((intake, ("low", "prohibited")), (sla, ("low", "high"))):
        svg = chart.render().decode().lower()
        assert all(TIER_COLOURS[t] in svg for t in tiers)
        assert "#f44336" not in svg  # pygal's default first colour (red) is not used for low
