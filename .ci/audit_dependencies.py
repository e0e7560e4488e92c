"""Known-vulnerability audit of the installed dependencies: pip-audit, with a fallback.

Usage: ``.venv/bin/python .ci/audit_dependencies.py`` (from the project root; .ci/run calls it).

1. Runs ``pip-audit`` (PyPA's auditor) on the virtualenv and fails on any vulnerability it
   reports.
2. pip-audit looks each release up in PyPI's per-release JSON API
   (``/pypi/<name>/<version>/json``). Where that endpoint is not served (this project's build
   machines reach PyPI through a mirror that answers it with 404), pip-audit skips the package.
   For every skipped package this script then reads PyPI's project JSON (``/pypi/<name>/json``),
   whose ``vulnerabilities`` list covers the project's newest release: when the installed
   version is that release, its advisories are checked the same way (any advisory whose
   ``fixed_in`` does not exclude the installed version fails the run).
3. Packages neither could check are listed as unchecked (a warning, not a failure: the data
   is not reachable from here).

Exit status: 0 when no known vulnerability was found, 1 when one was, 2 when pip-audit itself
could not run. Hand-rolled fallback (step 2) because no auditor reads the project-level data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = ROOT / ".venv" / "bin" / "pip-audit"


def run_pip_audit() -> list[dict]:
    """pip-audit's JSON ``dependencies`` list (name, version, vulns or skip_reason)."""
    done = subprocess.run(  # noqa: S603 - fixed argument list
        [str(PIP_AUDIT), "--skip-editable", "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return list(json.loads(done.stdout)["dependencies"])
    except (ValueError, KeyError):
        print(f"pip-audit did not run: {done.stderr.strip()[-2000:]}", file=sys.stderr)
        raise SystemExit(2) from None


def installed_version(skip_reason: str) -> str | None:
    """The version in pip-audit's skip reason '... could not be audited: name (1.2.3)'."""
    if skip_reason.endswith(")") and "(" in skip_reason:
        return skip_reason.rsplit("(", 1)[1][:-1]
    return None


def project_json(name: str) -> dict | None:
    """PyPI's project JSON for ``name``, or None when it cannot be fetched."""
    url = f"https://pypi.org/pypi/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - https URL
            return dict(json.load(response))
    except (urllib.error.URLError, TimeoutError, ValueError):
        return None


def affects(advisory: dict, version: str) -> bool:
    """True unless one of the advisory's ``fixed_in`` versions is at or below ``version``."""
    try:
        installed = Version(version)
        fixes = [Version(v) for v in advisory.get("fixed_in") or []]
    except InvalidVersion:
        return True
    return not any(fix <= installed for fix in fixes)


def main() -> int:
    """Run the audit; print a summary; return the exit status."""
    dependencies = run_pip_audit()
    vulnerable: list[str] = []
    audited, fallback, unchecked = 0, 0, []
    for dep in dependencies:
        name = dep["name"]
        if name == "reviewapp":  # this project, installed editable
            continue
        if "skip_reason" not in dep:
            audited += 1
            vulnerable += [f"{name} {dep['version']}: {v['id']}" for v in dep.get("vulns", [])]
            continue
        version = installed_version(dep["skip_reason"])
        data = project_json(name)
        if version is None or data is None or data["info"]["version"] != version:
            latest = data["info"]["version"] if data else "unknown"
            unchecked.append(f"{name} {version} (newest {latest})")
            continue
        fallback += 1
        vulnerable += [
            f"{name} {version}: {a.get('id')}"
            for a in data.get("vulnerabilities") or []
            if affects(a, version)
        ]
    print(
        f"dependency audit: {audited} packages checked by pip-audit, {fallback} by PyPI's "
        f"project data (newest release installed), {len(unchecked)} unchecked"
    )
    for line in unchecked:
        print(f"  unchecked (no advisory data reachable for this version): {line}")
    if vulnerable:
        print("known vulnerabilities:", file=sys.stderr)
        for line in vulnerable:
            print(f"  {line}", file=sys.stderr)
        return 1
    print("no known vulnerabilities")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
