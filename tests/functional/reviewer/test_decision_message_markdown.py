"""A decision message is Markdown written by the policy team around text that developers typed
(their application's title, their organization's name): the developers' text shows as typed,
never as a link, image or emphasis inside the Trust & Safety message."""

from __future__ import annotations

from sqlalchemy import select

from reviewapp.notifications.email import OUTBOX_MEMORY
from reviewapp.review.models import Decision
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory, content

TITLE = (
    "Bot [Verify your account now](https://evil.example/login) "
    "![x](https://evil.example/pixel.png) **APPROVED**"
)
ORGANIZATION = "Acme [click here](https://evil.example/org) <b>Ltd</b> & Co"


def test_developer_text_is_literal_in_the_decision_page_and_email(login, db) -> None:
    developer = UserFactory(organization=OrganizationFactory(name=ORGANIZATION))
    application = ApplicationFactory(
        submitted=True, submitter=developer, draft=content(title=TITLE)
    )
    staff = OrganizationFactory(name="Trust & Safety")
    client = login(UserFactory(reviewer=True, organization=staff))
    post_form(client, "/queue/claim-next", token_from="/queue")
    db.expire_all()
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            "outcome": "approve",
            "citations": ["usage-1.5"],
            "template": "approve-standard",
            "reviewer_note": "",
            "rationale": "fine",
            "version": str(application.version),
        },
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]

    pages = {
        "developer": login(developer).get(f"/applications/{application.reference}"),
        "reviewer": client.get(f"/review/{application.reference}"),
    }
    for who, response in pages.items():
        page = response.get_data(as_text=True)
        message = page[page.index('class="decision-message"') :]
        message = message[: message.index("</div>")]
        assert "evil.example" in message, who  # the text is there ...
        assert 'href="https://evil.example' not in message, who  # ... but no link,
        assert "<img" not in message, who  # no image,
        assert "<strong>APPROVED</strong>" not in message, who  # no bold
        assert "<b>Ltd</b>" not in message, who  # and no HTML
        assert "[Verify your account now](https://evil.example/login)" in message, who
        assert "**APPROVED**" in message, who
        assert "[click here](https://evil.example/org) &lt;b&gt;Ltd&lt;/b&gt; &amp; Co" in message
        # the template's own Markdown still renders: its policy links
        assert 'href="/policies/usage-1.5' in message or "/policies/usage-1.5" in message, who

    # the plain-text email shows what the developer typed, without Markdown's backslashes
    (email,) = [m for m in OUTBOX_MEMORY if m["To"] == developer.email]
    body = email.get_content()
    assert f'"{TITLE}"' in body
    assert f"Hello {ORGANIZATION} team" in body
    assert "\\[" not in body and "\\*" not in body
    decision = db.scalars(select(Decision).where(Decision.application_id == application.id)).one()
    assert "\\[Verify your account now\\]" in decision.message  # stored as escaped Markdown
