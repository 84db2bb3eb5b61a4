import os
import pathlib

import pytest

BIN_DIR = pathlib.Path(os.environ.get("PERSEUS_BIN_DIR", "build/bin"))
DATA_DIR = pathlib.Path(os.environ.get("PERSEUS_DATA_DIR", "data"))
GPT3 = DATA_DIR / "profiles" / "gpt3-175b+a100_sxm_bf16.csv"


@pytest.fixture
def gpt3_profile() -> str:
    return str(GPT3)


@pytest.fixture
def perseus_bin() -> str:
    return str(BIN_DIR / "perseus")
