"""The form for registering a webhook endpoint (rules and messages live in the services)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from reviewapp.limits import max_length
from reviewapp.webhooks.services import ALL_EVENTS, EVENT_TYPES


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes (the ``field`` macro renders it by this class name)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def event_type_choices() -> list[SelectChoice]:
    """ "All events" first, then every kind an endpoint may subscribe to."""
    return [SelectChoice(ALL_EVENTS, "All events, including kinds added later")] + [
        SelectChoice(kind, f"{label} ({kind})") for kind, label in EVENT_TYPES.items()
    ]


class EndpointForm(FlaskForm):
    """Register an endpoint: the URL and the events it wants."""

    url = StringField(
        "Endpoint URL",
        validators=[max_length("webhook.url")],
        description="An https:// URL of your service. Each event is POSTed there as JSON, signed "
        "in the X-Reviewapp-Signature header with the secret shown after you save.",
        render_kw={"placeholder": "https://example.com/hooks/reviewapp", "autocomplete": "off"},
    )
    event_types = MultiCheckboxField("Events to send", default=[ALL_EVENTS])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.event_types.choices = event_type_choices()
