"""The CPU training allocator tuning: a freed big tensor's memory is reused without page faults."""

import json
import os
import subprocess
import sys

import pytest

from roost.train.allocator import keep_freed_memory, user_chose_allocator

# In a fresh process (mallopt is process-wide), with the training loop imported as `roost train` has it when it
# tunes: allocate and free a 64 MiB tensor a few times, as training steps do, then count the minor page faults of
# doing it once more. (Without the imports, the heap's bins hold no small free chunks, so torch's small allocations
# after the tensor come from the top of the heap, the freed 64 MiB cannot merge back into it, and each aligned
# allocation then needs a little more than the freed chunk: the heap grows and faults whatever the tuning.)
PROBE = """
import json, resource, sys, torch
import roost.train.loop
from roost.train.allocator import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tune" else False
def faults_of_one_big_tensor():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20)  # 64 MiB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for _ in range(3):
    faults_of_one_big_tensor()
print(json.dumps({"tuned": tuned, "faults": faults_of_one_big_tensor()}))
"""


def probe(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}  # glibc's own
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_tuned_malloc_reuses_freed_big_tensors():
    plain, tuned = probe("plain"), probe("tune")
    pages = (64 << 20) // 4096
    assert plain["faults"] > pages // 2  # glibc's default: a fresh mmap, every page faulted in again
    assert tuned["tuned"] and tuned["faults"] < pages // 20


def test_a_users_own_allocator_choice_is_left_alone(monkeypatch):
    for name in [k for k in os.environ if k.startswith("MALLOC_")] + ["LD_PRELOAD"]:
        monkeypatch.delenv(name, raising=False)
    assert not user_chose_allocator()
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert user_chose_allocator() and not keep_freed_memory()
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert user_chose_allocator() and not keep_freed_memory()
