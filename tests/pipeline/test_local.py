"""What the steps' warm server imports ahead, per store."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa

from hpo_kfp.pipeline.local import WARM_MODULES, warm_modules


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/hpo.sqlite",
        "postgresql://u@db/hpo",
        "postgresql+psycopg://u@db/hpo",
        "mysql+pymysql://u@db/hpo",
        "mariadb://u@db/hpo",
    ],
)
def test_the_server_imports_the_dialect_a_step_would_load_for_the_store(url: str) -> None:
    dialect = sa.engine.make_url(url).get_dialect()
    package = dialect.__module__.rsplit(".", 1)[0]  # sqlalchemy.dialects.<name>
    assert package in warm_modules(url)
    assert package in sys.modules  # get_dialect() loaded it: the name is what a step would import


def test_an_unknown_store_gets_the_common_modules() -> None:
    assert warm_modules("mlmd+sqlite:////tmp/m.db") == WARM_MODULES
    assert warm_modules() == WARM_MODULES
