"""The X Education benchmark as a test: the honest 5-fold AUC (leaky columns out) must reach 0.86,
and the points model made of it must keep most of that."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.xeducation import LEADS, run


@pytest.mark.e2e
def test_x_education_auc(tmp_path: Path) -> None:
    if not LEADS.exists():
        pytest.skip(f"{LEADS} is absent: the X Education file is read from shared/data")
    figures = run(LEADS, workdir=tmp_path)
    assert figures.leads == 9240 and figures.converted == 3561
    assert figures.cv_auc >= 0.86
    assert figures.rules_backtest_auc is not None and figures.rules_backtest_auc >= 0.85
