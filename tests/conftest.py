import os

import pytest
import torch

# Tests share two cores; one intra-op thread keeps parallel test processes from fighting.
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def ws(tmp_path):
    from roost.workspace import Workspace

    return Workspace(tmp_path / "workspace")
