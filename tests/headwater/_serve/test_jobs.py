"""`job_for`: how a deployment's job variables and its pool's base job template combine."""

from __future__ import annotations

from pathlib import Path

import pytest
from headwater._serve.jobs import Job, job_for


def test_the_deployments_variables_are_laid_over_the_pools_template() -> None:
    job = job_for(
        {"env": {"B": "deployment", "C": None}, "working_dir": "/srv"},
        {"env": {"A": "pool", "B": "pool"}, "working_dir": "/tmp"},
    )
    assert job == Job(env={"A": "pool", "B": "deployment", "C": None}, working_dir="/srv")
    assert job.environment({"C": "1", "D": "2"}) == {"A": "pool", "B": "deployment", "D": "2"}


def test_a_runs_own_variables_are_laid_over_its_deployments() -> None:
    job = job_for(
        {"env": {"B": "deployment", "C": "deployment"}, "working_dir": "/srv"},
        {"env": {"A": "pool"}, "working_dir": "/tmp"},
        {"env": {"A": None, "C": "run"}, "working_dir": "/run"},
    )
    assert job == Job(env={"A": None, "B": "deployment", "C": "run"}, working_dir="/run")
    assert job_for({"working_dir": "/srv"}, None, {"env": {"D": 1}}).working_dir == "/srv"


def test_prefects_template_shape_gives_its_variables_defaults() -> None:
    template = {
        "job_configuration": {"env": "{{ env }}", "working_dir": "{{ working_dir }}"},
        "variables": {
            "type": "object",
            "properties": {
                "env": {"type": "object", "default": {"A": "1"}},
                "working_dir": {"type": "string"},
            },
        },
    }
    assert job_for({}, template) == Job(env={"A": "1"})


def test_a_relative_working_dir_is_taken_from_the_runners_directory() -> None:
    assert job_for({"working_dir": "jobs"}).working_dir == str(Path("jobs").resolve())
    assert job_for({"env": {"N": 5}}).env == {"N": "5"}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"env": "A=1"}, "job variable 'env' must be an object"),
        ({"working_dir": 3}, "job variable 'working_dir' must be a path"),
    ],
)
def test_unusable_job_variables_are_refused(variables: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        job_for(variables)
