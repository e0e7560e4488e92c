"""Rules lab services: drafts, rule editing, approval, publishing, rollback, shadow mode.

Every change is validated by compiling the whole draft (so a saved draft always compiles),
audited, and refused on a published or retired version (those are immutable).
Publishing needs: every rule's examples pass, a finished backtest of exactly this content, and
approval of exactly this content by an admin other than the publisher (four eyes).
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewapp.audit.services import record_event
from reviewapp.auth.models import Permission, User
from reviewapp.db import utcnow
from reviewapp.errors import ConflictError, InvalidTransition, PermissionDenied, ValidationFailed
from reviewapp.triage.engine import ACTION_TYPES, RuleValidationError, canonical_hash
from reviewapp.triage.models import Backtest, BacktestStatus, Rule, RulesetStatus, RulesetVersion
from reviewapp.triage.ruleset_file import RULE_KEY_RE, safe_load_yaml, validate_examples
from reviewapp.triage.services import (
    active_ruleset,
    compile_document,
    create_ruleset_version,
    ruleset_document,
)

_ACTION_ARG = {
    "raise_tier": "tier",
    "route_queue": "queue",
    "add_flag": "flag",
    "require_safety_requirement": "safety_requirement",
    "suggest_policy_section": "policy_section",
}


STALE_RULE_MESSAGE = (
    "Someone else saved this rule after you opened it. Nothing was saved; your text is kept "
    "below. Open the rule again in another tab to see their version."
)


def _require_admin(actor: User) -> None:
    if not actor.can(Permission.manage_rulesets):
        raise PermissionDenied("Only admins edit and publish triage rulesets.")


def _require_draft(version: RulesetVersion) -> None:
    if version.status != RulesetStatus.draft:
        raise InvalidTransition(
            f"Ruleset v{version.number} is {version.status}; published and retired versions never change. Start a new draft from it."
        )


def get_version(session: Session, number: int) -> RulesetVersion:
    """A ruleset version by number. Raises NotFound."""
    from reviewapp.errors import NotFound

    version = session.scalars(select(RulesetVersion).where(RulesetVersion.number == number)).first()
    if version is None:
        raise NotFound(f"No ruleset version {number}.")
    return version


def parse_actions(text: str) -> list[dict[str, str]]:
    """Parse one action per line, ``type: value`` (e.g. ``raise_tier: high``).

    Raises:
        ValidationFailed: naming the line and what is wrong.
    """
    actions = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, value = line.partition(":")
        kind, value = kind.strip(), value.strip()
        if not sep or not value:
            raise ValidationFailed(
                f"Action line {number}: write it as 'type: value', e.g. 'raise_tier: high'.",
                fields={"actions": f"line {number}: expected 'type: value'"},
            )
        if kind not in _ACTION_ARG:
            raise ValidationFailed(
                f"Action line {number}: unknown action type {kind!r}.",
                fields={
                    "actions": f"line {number}: unknown type {kind!r}; use one of {', '.join(ACTION_TYPES)}"
                },
            )
        actions.append({"type": kind, _ACTION_ARG[kind]: value})
    if not actions:
        raise ValidationFailed(
            "A rule needs at least one action.",
            fields={"actions": "add at least one action, e.g. 'raise_tier: high'"},
        )
    return actions


def format_actions(actions: list[dict[str, str]]) -> str:
    """The editor's text form of a rule's actions (inverse of :func:`parse_actions`)."""
    return "\n".join(f"{a['type']}: {a[_ACTION_ARG[a['type']]]}" for a in actions)


def parse_examples(text: str) -> dict[str, Any]:
    """Parse the examples YAML (``must_fire`` / ``must_not_fire`` lists of content mappings).

    Raises:
        ValidationFailed: invalid YAML (with line) or wrong shape.
    """
    if not text.strip():
        return {}
    try:
        data = safe_load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ValidationFailed(
            f"Examples: {problem}{where}.", fields={"examples": f"{problem}{where}"}
        ) from None
    try:
        return validate_examples(data, rule_key="")
    except RuleValidationError as exc:
        raise ValidationFailed(f"Examples: {exc.detail}", fields={"examples": exc.detail}) from None


def _validate_draft(session: Session, document: dict[str, Any], rule_key: str | None) -> None:
    """Compile the whole document and run the edited rule's examples; on failure raise
    ValidationFailed pointing at the field of the rule being edited."""
    try:
        compiled = compile_document(session, document)
    except RuleValidationError as exc:
        field = {"condition": "condition", "actions": "actions", "key": "key"}.get(
            exc.where, "condition"
        )
        if exc.rule_key is None:
            field = "keyword_lists"
        elif rule_key is not None and exc.rule_key != rule_key:
            field = "condition"
        raise ValidationFailed(str(exc), fields={field: exc.detail}) from None
    failures = [
        f
        for f in compiled.check_examples()
        if rule_key is None or f.startswith(f"rule {rule_key!r}")
    ]
    if failures and rule_key is not None:
        raise ValidationFailed("; ".join(failures), fields={"examples": "; ".join(failures)})


def start_draft(
    session: Session, actor: User, source: RulesetVersion, *, description: str = ""
) -> RulesetVersion:
    """A new draft that copies ``source`` (any status)."""
    _require_admin(actor)
    document = ruleset_document(source)
    document["description"] = description or f"Draft started from v{source.number}"
    draft = create_ruleset_version(session, document, actor=actor)
    draft.parent_id = source.id
    record_event(
        session,
        actor=actor,
        action="ruleset.draft",
        subject_type="ruleset_version",
        subject_id=draft.number,
        after={"from": source.number},
    )
    return draft


def rule_edit_fingerprint(rule: Rule) -> str:
    """A hash of a rule's editable fields (key, name, description, condition, actions, enabled,
    examples), 64 hex digits. The edit form carries the one it was opened with, so that
    :func:`save_rule` can refuse a save over someone else's newer save of the same rule."""
    return canonical_hash(
        {
            "key": rule.key,
            "name": rule.name,
            "description": rule.description,
            "condition": rule.condition,
            "actions": rule.actions,
            "enabled": rule.enabled,
            "examples": rule.examples,
        }
    )


def save_rule(
    session: Session,
    actor: User,
    version: RulesetVersion,
    *,
    original_key: str | None,
    data: dict[str, Any],
    seen: str | None = None,
) -> Rule:
    """Create (``original_key`` None) or replace a rule of a draft, validating the whole draft.

    ``data``: key, name, description, condition, actions (list), enabled, examples (dict).
    ``seen``: the :func:`rule_edit_fingerprint` of the rule when the editor opened it (None or
    empty: not checked, as for API-style callers that send none).
    Raises:
        PermissionDenied, InvalidTransition (not a draft), ValidationFailed (field -> message),
        ConflictError (duplicate key, the rule is gone, or someone else saved it after ``seen``).
    """
    _require_admin(actor)
    _require_draft(version)
    if original_key is not None and seen:
        current = next((r for r in version.rules if r.key == original_key), None)
        if current is not None and rule_edit_fingerprint(current) != seen:
            raise ConflictError(STALE_RULE_MESSAGE)
    key = str(data.get("key") or "").strip()
    if not RULE_KEY_RE.fullmatch(key):
        raise ValidationFailed(
            "The key is required: it starts with a letter or digit, then letters, digits, '-', '_' or '.'.",
            fields={"key": "letters, digits, - _ . only"},
        )
    existing = {r.key: r for r in version.rules}
    if key != original_key and key in existing:
        raise ValidationFailed(
            f"Another rule already has the key {key!r}.",
            fields={"key": "already used in this draft"},
        )
    document = ruleset_document(version)
    new_rule = {
        "key": key,
        "name": str(data.get("name") or "").strip() or key,
        "description": str(data.get("description") or ""),
        "condition": str(data.get("condition") or ""),
        "actions": data["actions"],
        "enabled": bool(data.get("enabled", True)),
        "examples": data.get("examples") or {},
    }
    if original_key is None:
        document["rules"].append(new_rule)
    else:
        if original_key not in existing:
            raise ConflictError(f"Rule {original_key!r} is no longer in this draft.")
        document["rules"] = [new_rule if r["key"] == original_key else r for r in document["rules"]]
    _validate_draft(session, document, key)
    before = None
    if original_key is None:
        rule = Rule(
            key=key,
            position=len(version.rules),
            name=new_rule["name"],
            description=new_rule["description"],
            condition=new_rule["condition"],
            actions=new_rule["actions"],
            enabled=new_rule["enabled"],
            examples=new_rule["examples"],
        )
        version.rules.append(rule)
    else:
        rule = existing[original_key]
        before = {
            "key": rule.key,
            "condition": rule.condition,
            "actions": rule.actions,
            "enabled": rule.enabled,
        }
        rule.key, rule.name, rule.description = key, new_rule["name"], new_rule["description"]
        rule.condition, rule.actions, rule.enabled, rule.examples = (
            new_rule["condition"],
            new_rule["actions"],
            new_rule["enabled"],
            new_rule["examples"],
        )
    _record_draft_change(
        session,
        actor,
        version,
        "ruleset.rule_save",
        before=before,
        after={
            "key": key,
            "condition": rule.condition,
            "actions": rule.actions,
            "enabled": rule.enabled,
        },
    )
    return rule


def delete_rule(session: Session, actor: User, version: RulesetVersion, key: str) -> None:
    """Remove a rule from a draft."""
    _require_admin(actor)
    _require_draft(version)
    rule = next((r for r in version.rules if r.key == key), None)
    if rule is None:
        raise ConflictError(f"Rule {key!r} is no longer in this draft.")
    version.rules.remove(rule)
    for position, r in enumerate(version.rules):
        r.position = position
    _record_draft_change(
        session,
        actor,
        version,
        "ruleset.rule_delete",
        before={"key": key, "condition": rule.condition},
    )


def move_rule(
    session: Session, actor: User, version: RulesetVersion, key: str, offset: int
) -> None:
    """Move a rule up (-1) or down (+1) in a draft (order decides which route_queue wins)."""
    _require_admin(actor)
    _require_draft(version)
    rules = list(version.rules)
    index = next((i for i, r in enumerate(rules) if r.key == key), None)
    if index is None:
        raise ConflictError(f"Rule {key!r} is no longer in this draft.")
    target = max(0, min(len(rules) - 1, index + offset))
    if target == index:
        return  # already first/last: nothing changes, nothing to approve again
    rules.insert(target, rules.pop(index))
    # two passes so the positions never collide mid-flush
    for position, r in enumerate(rules):
        r.position = position
    version.rules.sort(key=lambda r: r.position)
    _record_draft_change(
        session, actor, version, "ruleset.rule_move", after={"key": key, "position": target}
    )


def save_keyword_list(
    session: Session,
    actor: User,
    version: RulesetVersion,
    name: str,
    phrases: list[str],
    description: str = "",
) -> None:
    """Create or replace a keyword list of a draft (an empty phrase list deletes it)."""
    _require_admin(actor)
    _require_draft(version)
    if name == "new":
        raise ValidationFailed(
            "'new' is reserved; choose another name.", fields={"name": "reserved name"}
        )
    lists = dict(version.keyword_lists)
    before = lists.get(name)
    if phrases:
        lists[name] = {"description": description, "phrases": phrases}
    else:
        lists.pop(name, None)
    document = ruleset_document(version)
    document["keyword_lists"] = lists
    try:
        compile_document(session, document)
    except RuleValidationError as exc:
        raise ValidationFailed(
            str(exc), fields={"phrases" if exc.rule_key is None else "name": exc.detail}
        ) from None
    version.keyword_lists = lists
    _record_draft_change(
        session,
        actor,
        version,
        "ruleset.keyword_list_save",
        before={"name": name, "list": before},
        after={"name": name, "list": lists.get(name)},
    )


def _record_draft_change(
    session: Session,
    actor: User,
    version: RulesetVersion,
    action: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """After any edit of a draft: rehash its content, drop an approval of the old content,
    flush, and audit the edit."""
    version.content_hash = canonical_hash(ruleset_document(version))
    _invalidate_approval(version)
    session.flush()
    record_event(
        session,
        actor=actor,
        action=action,
        subject_type="ruleset_version",
        subject_id=version.number,
        before=before,
        after=after,
    )


def _invalidate_approval(version: RulesetVersion) -> None:
    version.approved_by_id = None
    version.approved_at = None
    version.approved_hash = None


def publish_checks(session: Session, version: RulesetVersion) -> dict[str, Any]:
    """What publishing ``version`` still needs: {"examples": [failures], "backtest": bool,
    "approved": bool, "approver_id": id|None}."""
    document = ruleset_document(version)
    try:
        failures = compile_document(session, document).check_examples()
    except RuleValidationError as exc:
        failures = [str(exc)]
    current_hash = canonical_hash(document)
    backtest = session.scalars(
        select(Backtest)
        .where(
            Backtest.ruleset_version_id == version.id,
            Backtest.status == BacktestStatus.done,
            Backtest.content_hash == current_hash,
        )
        .order_by(Backtest.id.desc())
    ).first()
    return {
        "examples": failures,
        "backtest": backtest is not None,
        "backtest_id": backtest.id if backtest else None,
        "approved": version.approved_hash == current_hash and version.approved_by_id is not None,
        "approver_id": version.approved_by_id if version.approved_hash == current_hash else None,
    }


def approve(session: Session, actor: User, version: RulesetVersion) -> None:
    """Record the actor's approval of the draft's current content (the first pair of eyes)."""
    _require_admin(actor)
    _require_draft(version)
    version.approved_by_id = actor.id
    version.approved_at = utcnow()
    version.approved_hash = canonical_hash(ruleset_document(version))
    session.flush()
    record_event(
        session,
        actor=actor,
        action="ruleset.approve",
        subject_type="ruleset_version",
        subject_id=version.number,
        after={"content_hash": version.approved_hash},
    )


def publish(
    session: Session, actor: User, version: RulesetVersion, *, expected_active_id: int | None
) -> RulesetVersion:
    """Make a draft the active ruleset, atomically.

    Needs: examples pass, a finished backtest of this content, approval of this content by
    another admin. ``expected_active_id`` is the active version the admin saw; if someone
    published meanwhile, this raises ConflictError instead of silently replacing their work.
    Returns the previously active version (now retired).
    """
    _require_admin(actor)
    _require_draft(version)
    checks = publish_checks(session, version)
    problems = []
    if checks["examples"]:
        problems.append(f"{len(checks['examples'])} rule example(s) fail")
    if not checks["backtest"]:
        problems.append("no finished backtest of this exact content")
    if not checks["approved"]:
        problems.append("not approved in its current form by a second admin")
    elif checks["approver_id"] == actor.id:
        problems.append("you approved it yourself; another admin must publish (four eyes)")
    if problems:
        raise ValidationFailed("Cannot publish yet: " + "; ".join(problems) + ".")
    return _activate(
        session, actor, version, expected_active_id=expected_active_id, action="ruleset.publish"
    )


def rollback(
    session: Session, actor: User, version: RulesetVersion, *, expected_active_id: int | None
) -> RulesetVersion:
    """Re-activate an earlier published (now retired) version, as a new publish event."""
    _require_admin(actor)
    if version.status != RulesetStatus.retired or version.published_at is None:
        raise InvalidTransition("Only a version that was published before can be rolled back to.")
    return _activate(
        session, actor, version, expected_active_id=expected_active_id, action="ruleset.rollback"
    )


def _activate(
    session: Session,
    actor: User,
    version: RulesetVersion,
    *,
    expected_active_id: int | None,
    action: str,
) -> RulesetVersion:
    current = session.scalars(
        select(RulesetVersion)
        .where(RulesetVersion.status == RulesetStatus.published)
        .with_for_update()
    ).first()
    if current is None or (expected_active_id is not None and current.id != expected_active_id):
        raise ConflictError(
            f"The active ruleset changed while you were looking (now v{current.number if current else '—'}). Reload and check again."
        )
    current.status = RulesetStatus.retired
    session.flush()  # the one-active unique index is satisfied before the new one turns active
    version.status = RulesetStatus.published
    version.shadow = False
    if action == "ruleset.rollback":  # the first publish stays on record
        version.reactivated_at = utcnow()
        version.reactivated_by_id = actor.id
    else:
        version.published_at = utcnow()
        version.published_by_id = actor.id
    session.flush()
    record_event(
        session,
        actor=actor,
        action=action,
        subject_type="ruleset_version",
        subject_id=version.number,
        before={"active": current.number},
        after={"active": version.number, "content_hash": version.content_hash},
    )
    from reviewapp.jobs import enqueue_after_commit
    from reviewapp.triage.retriage import retriage_open_applications

    enqueue_after_commit(retriage_open_applications, version.id)
    return current


def set_shadow(session: Session, actor: User, version: RulesetVersion, enabled: bool) -> None:
    """Run (or stop running) a draft in shadow on new submissions. At most one shadow draft."""
    _require_admin(actor)
    _require_draft(version)
    if enabled:
        for other in session.scalars(
            select(RulesetVersion).where(
                RulesetVersion.shadow.is_(True), RulesetVersion.id != version.id
            )
        ):
            other.shadow = False
    version.shadow = enabled
    session.flush()
    record_event(
        session,
        actor=actor,
        action="ruleset.shadow_on" if enabled else "ruleset.shadow_off",
        subject_type="ruleset_version",
        subject_id=version.number,
    )


def versions(session: Session) -> list[RulesetVersion]:
    """All versions, newest first."""
    return list(session.scalars(select(RulesetVersion).order_by(RulesetVersion.number.desc())))


def version_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(RulesetVersion)) or 0)


__all__ = ["active_ruleset"]
