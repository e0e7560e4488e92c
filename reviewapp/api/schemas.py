"""Marshmallow schemas of the JSON API: they document every request and response in the
OpenAPI document (reviewapp/api/openapi.py) and validate the request bodies that are not
application content (application content is validated by applications.schema.clean_content,
the same rules as the browser form)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from reviewapp.limits import api_length


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"description": "Machine-readable code."})
    message = fields.String(required=True)
    field_problems = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Field name -> problem, for validation errors."},
    )


class Error(Schema):
    """Every error: ``{"error": {"code", "message", "fields"}}``."""

    error = fields.Nested(ErrorDetail, required=True)


class Content(Schema):
    """Application content (the go-live form). Drafts may leave fields empty; submitting
    needs every field the form marks as required. Allowed values: GET /vocabularies."""

    class Meta:
        unknown = EXCLUDE

    title = fields.String(validate=api_length("application.title"))
    category = fields.String(allow_none=True, validate=api_length("vocabulary.key"))
    description = fields.String(validate=api_length("application.description"))
    benefits = fields.String(validate=api_length("application.benefits"))
    end_users = fields.List(fields.String(validate=api_length("vocabulary.key")))
    domains = fields.List(fields.String(validate=api_length("vocabulary.key")))
    modalities = fields.List(fields.String(validate=api_length("vocabulary.key")))
    monthly_requests = fields.Integer(allow_none=True)
    human_review_of_outputs = fields.Boolean(allow_none=True)
    safety_measures = fields.String(validate=api_length("application.safety_measures"))
    product_url = fields.String(validate=api_length("application.product_url"))


class CreateApplication(Content):
    submit = fields.Boolean(metadata={"description": "Submit the draft at once."})


class Answer(Schema):
    attested = fields.Boolean(required=True, truthy={True}, falsy={False})  # JSON booleans only
    details = fields.String(
        required=True,
        validate=api_length("mitigation.details"),
        metadata={"description": "20–5000 characters."},
    )
    link = fields.String(
        validate=api_length("mitigation.link"),
        metadata={"description": "Optional http(s) address of evidence."},
    )


class PatchApplication(Content):
    """Partial content of a draft (or of an application awaiting mitigations), and/or the
    answers to the requested safety requirements (requirement id -> answer). ``answers`` must
    answer every requested requirement at once (each PATCH replaces the set); answers can be
    changed until the application is resubmitted."""

    answers = fields.Dict(keys=fields.String(), values=fields.Nested(Answer))


class FiredRule(Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)
    actions = fields.List(fields.Dict(), required=True)
    explanation = fields.String(required=True)


class Triage(Schema):
    ruleset_version = fields.Integer(required=True)
    tier = fields.String(required=True)
    queue = fields.String(required=True)
    fired_rules = fields.List(fields.Nested(FiredRule), required=True)
    flags = fields.List(fields.String(), required=True)
    errors = fields.List(fields.Dict(), required=True)


class CitationOut(Schema):
    id = fields.String(required=True, metadata={"description": "Policy section id."})
    number = fields.String(required=True)
    title = fields.String(required=True)
    version = fields.Integer(required=True, metadata={"description": "The version cited."})


class RequirementOut(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    reason = fields.String(required=True)
    parameters = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    attested = fields.Boolean(required=True)


class DecisionOut(Schema):
    outcome = fields.String(
        required=True, validate=validate.OneOf(["approve", "request_mitigations", "reject"])
    )
    message = fields.String(required=True)
    decided_at = fields.DateTime(required=True)
    revision = fields.Integer(required=True, allow_none=True)
    citations = fields.List(fields.Nested(CitationOut), required=True)
    safety_requirements = fields.List(
        fields.Nested(RequirementOut),
        required=True,
        metadata={
            "description": "request_mitigations: what to meet and answer; approve: the "
            "conditions of the approval, with their parameters."
        },
    )
    conditional = fields.Boolean(required=True)


class ApplicationSummary(Schema):
    reference = fields.String(required=True, metadata={"example": "APP-000123"})
    external_ref = fields.String(required=True, allow_none=True)
    title = fields.String(required=True)
    organization = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "description": "As the token's user sees it: a developer's tokens read in_review "
            "while a second approval is awaited (awaiting_second_approval for the review team)."
        },
    )
    risk_tier = fields.String(required=True, allow_none=True)
    queue = fields.String(required=True, allow_none=True)
    submitted_at = fields.DateTime(required=True, allow_none=True)
    sla_due_at = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "SLA estimate: when review is due (UTC); null when paused."},
    )


class ApplicationOut(ApplicationSummary):
    content = fields.Dict(required=True)
    draft = fields.Dict(required=True, allow_none=True)
    revision = fields.Integer(required=True, allow_none=True)
    flags = fields.List(fields.String(), required=True)
    queue_position = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "1 = next in its queue, up to 1000; null when not waiting in a "
            "queue, or when 1,000 or more applications are ahead of it."
        },
    )
    version = fields.Integer(required=True, metadata={"description": "Also the ETag."})
    lease_expires_at = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={
            "description": "When your claim ends unless you renew it (UTC); null when you do "
            "not hold this application."
        },
    )
    created_at = fields.DateTime(required=True)
    triage = fields.Nested(Triage, required=True, allow_none=True)
    decision = fields.Nested(DecisionOut, required=True, allow_none=True)


class Page(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


class ApplicationPage(Page):
    items = fields.List(fields.Nested(ApplicationSummary), required=True)


class QueuePage(ApplicationPage):
    total_capped = fields.Boolean(
        required=True,
        metadata={
            "description": "True when more than 1,000 applications match: `total` then says "
            "1000 (the count stops there, as the queue page's does)."
        },
    )


class RevisionOut(Schema):
    number = fields.Integer(required=True)
    submitted_at = fields.DateTime(required=True)
    content = fields.Dict(required=True)


class RevisionList(Schema):
    items = fields.List(fields.Nested(RevisionOut), required=True)


class FieldChangeOut(Schema):
    field = fields.String(required=True)
    label = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["text", "list", "value"]))
    before = fields.Raw(required=True, allow_none=True)
    after = fields.Raw(required=True, allow_none=True)
    added = fields.List(fields.String(), required=True)
    removed = fields.List(fields.String(), required=True)
    segments = fields.List(
        fields.List(fields.String()),
        required=True,
        metadata={"description": "[op, text] pairs; op is equal, insert or delete."},
    )


class DiffOut(Schema):
    revision = fields.Integer(required=True)
    against = fields.Integer(required=True)
    changes = fields.List(fields.Nested(FieldChangeOut), required=True)


class AppealIn(Schema):
    statement = fields.String(
        required=True,
        validate=api_length("appeal.statement"),
        metadata={"description": "20–5000 characters."},
    )


class RequirementIn(Schema):
    id = fields.String(required=True, validate=api_length("requirement.key"))
    reason = fields.String(validate=api_length("reason.text"))
    parameters = fields.Dict(
        keys=fields.String(validate=api_length("requirement.key")), values=fields.Integer()
    )


class DecisionIn(Schema):
    outcome = fields.String(
        required=True, validate=validate.OneOf(["approve", "request_mitigations", "reject"])
    )
    citations = fields.List(
        fields.String(validate=api_length("policy_section.key")),
        metadata={"description": "Policy section ids."},
    )
    safety_requirements = fields.List(
        fields.Raw(),
        metadata={
            "description": "Safety requirement ids, or objects {id, reason, parameters}; "
            "request_mitigations needs a reason for each, and every parameter the catalogue "
            "defines for it (GET /catalogue lists ids and parameters)."
        },
    )
    template = fields.String(
        required=True,
        validate=api_length("template.key"),
        metadata={"description": "Response template key."},
    )
    message = fields.String(
        validate=api_length("decision.reviewer_note"),
        metadata={"description": "Note inserted into the template."},
    )
    rationale = fields.String(
        validate=api_length("decision.rationale"), metadata={"description": "Internal; never sent."}
    )
    version = fields.Integer(metadata={"description": "The application version you judged."})


class DecisionCreated(Schema):
    id = fields.Integer(required=True)
    outcome = fields.String(required=True)
    final = fields.Boolean(required=True)
    application = fields.Nested(ApplicationOut, required=True)


class PolicyVersionOut(Schema):
    version = fields.Integer(required=True)
    effective_date = fields.Date(required=True)
    change_summary = fields.String(required=True)
    text = fields.String(required=True, metadata={"description": "Markdown."})
    upcoming = fields.Boolean(
        required=True, metadata={"description": "Published to take effect after today (UTC)."}
    )
    url = fields.String(required=True)


class PolicySummary(Schema):
    id = fields.String(required=True)
    number = fields.String(required=True)
    title = fields.String(required=True)
    source = fields.String(required=True)
    current_version = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The version in force today (UTC); null before the first."},
    )
    effective_date = fields.Date(required=True, allow_none=True)


class PolicyList(Schema):
    items = fields.List(fields.Nested(PolicySummary), required=True)


class PolicyOut(PolicySummary):
    versions = fields.List(fields.Nested(PolicyVersionOut), required=True)


class Vocabularies(Schema):
    category = fields.List(fields.String(), required=True)
    end_users = fields.List(fields.String(), required=True)
    domains = fields.List(fields.String(), required=True)
    modalities = fields.List(fields.String(), required=True)
    tiers = fields.List(fields.String(), required=True)
    labels = fields.Dict(required=True)


class ParameterSpec(Schema):
    name = fields.String(required=True)
    label = fields.String(required=True)
    unit = fields.String(required=True)
    min = fields.Integer(required=True)
    max = fields.Integer(required=True)


class RequirementSpec(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    parameters = fields.List(fields.Nested(ParameterSpec), required=True)


class TemplateSpec(Schema):
    key = fields.String(required=True)
    title = fields.String(required=True)
    outcome = fields.String(required=True)


class Catalogue(Schema):
    """What a decision may name: outcomes, response templates, safety requirements with their
    parameters, application statuses and risk tiers."""

    outcomes = fields.List(fields.String(), required=True)
    statuses = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "The statuses the token's user sees and may filter by."},
    )
    tiers = fields.List(fields.String(), required=True)
    response_templates = fields.List(fields.Nested(TemplateSpec), required=True)
    safety_requirements = fields.List(fields.Nested(RequirementSpec), required=True)


#: the request-body schemas (every text field in them carries a length limit; a test checks)
INPUT_SCHEMAS: tuple[type[Schema], ...] = (
    Content,
    CreateApplication,
    PatchApplication,
    Answer,
    AppealIn,
    RequirementIn,
    DecisionIn,
)
