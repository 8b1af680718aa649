"""A loaded model's environment check: MLflow's warnings (requirements, Python version), made
without mapping every installed package."""

from __future__ import annotations

import sys
from importlib.metadata import version

from homevision.tracking import environment_mismatches


def test_each_difference_from_the_logged_environment_is_named(tmp_path):
    (tmp_path / "requirements.txt").write_text(
        "# logged by homevision\n"
        f"numpy=={version('numpy')}\n"
        "pandas==0.0.1\n"
        "surely-not-installed-homevision-pkg==1.0\n"
        'only-on-python-two-homevision-pkg==1.0; python_version < "3"\n'
        "--extra-index-url https://example.invalid/simple\n"
    )
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    python_version: 2.7.18\n")
    found = environment_mismatches(tmp_path)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert found == [
        f"needs pandas==0.0.1; pandas {version('pandas')} is installed",
        "needs surely-not-installed-homevision-pkg==1.0, which is not installed",
        f"was logged with Python 2.7.18; this is Python {here}",
    ]


def test_the_environment_a_model_was_logged_in_has_no_differences(tmp_path):
    here = ".".join(map(str, sys.version_info[:3]))
    (tmp_path / "requirements.txt").write_text(f"numpy=={version('numpy')}\nscikit-learn\n")
    (tmp_path / "MLmodel").write_text(f"flavors:\n  python_function:\n    python_version: {here}\n")
    assert environment_mismatches(tmp_path) == []
    assert environment_mismatches(tmp_path / "missing") == []
