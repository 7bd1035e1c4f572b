"""bertzoo on Ray Data, on a real local cluster (``ray.init(num_cpus=2)``, started once for the module).

- ``bertzoo.integrations.ray.embed / classify / rerank`` over a Ray Dataset equal the local
  functions (one execution: three actor pools chained).
- ``embed_to_folder_ray`` with two actors writes the local engine's folder byte for byte
  (manifest apart from ``timing``) while one actor's process is SIGKILLed mid-job: Ray restarts
  it and retries what it held.
- ``bertzoo embed --engine ray --resume`` in a real subprocess (joining the module's cluster
  through ``RAY_ADDRESS``) finishes a local run that was interrupted after its first shard, again
  byte for byte.
- An error raised in an actor (a text too long under ``truncate="error"``) reaches the caller as
  bertzoo's own exception, not as Ray's wrapper.
- Without Ray: ``import bertzoo`` never imports ray, a missing extra is one clear error, and the
  driver's chunk plan and reads over a folder of files give the single file's rows.

Ray starts slowly (about 10 s per cluster, and each actor imports torch and loads its model),
so the module runs few Ray executions. Both engines run with one torch thread: the vectors are
then bitwise equal.
"""

from __future__ import annotations

import _thread
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bertzoo
from bertzoo.corpus import InputSource, embed_to_folder, load_folder

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'bertzoo[ray]'")
pytest.importorskip("ray.data", reason="needs ray[data]: pip install 'bertzoo[ray]'")
transformers = pytest.importorskip("transformers", reason="builds the tiny classifier (dev extra)")

N_ROWS, SHARD, CHUNK = 3_000, 500, 100
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "café", "東京", "🚀"]


def _lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(WORDS, k=rng.choice([1, 3, 8, 40]))) + f" {i}" for i in range(n)]
    lines[3] = ""  # blank lines are rows of the local engine too
    return lines


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    except Exception as exc:  # say exactly why: ports, /dev/shm (the object store) and the error itself
        shm = shutil.disk_usage("/dev/shm").free if os.path.isdir("/dev/shm") else None
        pytest.skip(f"a local Ray cluster did not start: {exc!r} (/dev/shm free: {shm} bytes)")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict[str, Path]:
    """An input file and the local engine's folder for it (one torch thread)."""
    root = tmp_path_factory.mktemp("ray-corpus")
    source = root / "in.txt"
    source.write_text("\n".join(_lines(N_ROWS)) + "\n", encoding="utf-8")
    reference = root / "local"
    embed_to_folder(InputSource.from_path(str(source)), reference, tiny_bert, shard_size=SHARD, chunk_size=CHUNK,
                    threads=1)
    return {"model": tiny_bert, "source": source, "reference": reference}


def _classifier(folder: Path, num_labels: int, tokenizer_from: Path) -> Path:
    import torch

    torch.manual_seed(1)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=64, num_labels=num_labels)
    transformers.BertForSequenceClassification(cfg).eval().save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tokenizer_from / name, folder / name)
    return folder


def assert_same_folder(ours: Path, reference: Path) -> dict[str, Any]:
    """Every shard file equal byte for byte, the manifest equal apart from ``timing``; returns ours."""
    names = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in ours.iterdir()) == names
    for name in names:
        if name != "manifest.json":
            assert (ours / name).read_bytes() == (reference / name).read_bytes(), name
    mine, theirs = (json.loads((f / "manifest.json").read_text()) for f in (ours, reference))
    assert {k: v for k, v in mine.items() if k != "timing"} == {k: v for k, v in theirs.items() if k != "timing"}
    return mine


def test_dataset_functions_equal_the_local_ones(cluster: Any, tiny_bert: Path, tmp_path: Path) -> None:
    import bertzoo.integrations.ray as bzray

    classifier = _classifier(tmp_path / "cls", 3, tiny_bert)
    cross = _classifier(tmp_path / "ce", 1, tiny_bert)
    texts = _lines(300, seed=1)
    queries = ["where is the fox", "a lazy dog"]
    rows = [{"text": t, "query": queries[int(i >= 150)], "id": i} for i, t in enumerate(texts)]
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ray.data.from_items(rows)
    # three pools in one execution: half a CPU each fits the two-CPU cluster
    small = {"num_cpus": 0.5, "threads": 1, "batch_size": 64}
    ds = bzray.embed(ds, tiny_bert, details=True, **small)
    ds = bzray.classify(ds, classifier, **small)
    ds = bzray.rerank(ds, cross, document_column="text", output_column="relevance", **small)
    out = ds.take_all()
    assert [r["id"] for r in out] == list(range(len(texts)))
    np.testing.assert_allclose(np.stack([r["embedding"] for r in out]), bertzoo.embed(texts, model=tiny_bert),
                               atol=1e-6)
    assert [r["truncated"] for r in out] == [r["tokens"] > 32 for r in out]
    local = bertzoo.classify(texts, model=classifier)
    assert [r["label"] for r in out] == [x["label"] for x in local]
    np.testing.assert_allclose([r["score"] for r in out], [x["score"] for x in local], atol=1e-6)
    for query in queries:
        mine = [(r["id"], r["relevance"]) for r in out if r["query"] == query]
        ranked = bertzoo.rerank(query, [texts[i] for i, _ in mine], model=cross)
        expected = {mine[x["index"]][0]: x["score"] for x in ranked}
        np.testing.assert_allclose([s for _, s in mine], [expected[i] for i, _ in mine], atol=1e-6)


def _embed_actors() -> list[dict[str, Any]]:
    """The bertzoo actors of this job as the GCS records them (no dashboard needed)."""
    from ray._private import state

    return [a for a in state.actors().values() if "EmbedActor" in a["ActorClassName"]]


def test_folder_job_equals_the_local_engine_with_an_actor_killed(cluster: Any, corpus: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    from bertzoo.integrations.ray_corpus import RayOptions, embed_to_folder_ray

    out = tmp_path / "ray"
    killed: dict[str, Any] = {}

    def kill_one_actor_mid_job() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            try:  # the first shard is written: both actors are busy with the rest
                done = json.loads((out / "manifest.json").read_text())["rows_done"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                done = 0
            alive = [a for a in _embed_actors() if a["State"] == "ALIVE" and a["Pid"]]
            if done >= SHARD and alive:
                killed.update(rows_done=done, pid=alive[0]["Pid"], actor=alive[0]["ActorID"])
                os.kill(alive[0]["Pid"], signal.SIGKILL)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_one_actor_mid_job, daemon=True)
    watcher.start()
    manifest = embed_to_folder_ray(str(corpus["source"]), out, corpus["model"], shard_size=SHARD, chunk_size=CHUNK,
                                   threads=1, ray_options=RayOptions(actors=2))
    watcher.join(timeout=10)
    assert killed, "the watcher never saw an actor to kill"
    assert killed["rows_done"] < N_ROWS, "the job ended before the kill: nothing was left to retry"
    restarted = [a for a in _embed_actors() if a["ActorID"] == killed["actor"]]
    assert restarted and restarted[0]["NumRestarts"] >= 1, restarted
    assert manifest["complete"] and manifest["rows_done"] == N_ROWS
    assert manifest["timing"]["engine"]["name"] == "ray" and manifest["timing"]["engine"]["actors"] == 2
    assert_same_folder(out, corpus["reference"])
    vectors, rows = load_folder(out)
    assert rows["row"].tolist() == list(range(N_ROWS))


def test_cli_engine_ray_resumes_an_interrupted_local_run(cluster: Any, corpus: dict[str, Path], tmp_path: Path,
                                                         ) -> None:
    out = tmp_path / "resumed"

    def interrupt_after_first_shard() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if json.loads((out / "manifest.json").read_text())["rows_done"] >= SHARD:
                    _thread.interrupt_main()
                    return
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.002)

    threading.Thread(target=interrupt_after_first_shard, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        embed_to_folder(InputSource.from_path(str(corpus["source"])), out, corpus["model"], shard_size=SHARD,
                        chunk_size=CHUNK, threads=1)
    partial = json.loads((out / "manifest.json").read_text())
    assert not partial["complete"] and SHARD <= partial["rows_done"] < N_ROWS

    # the command joins the module's cluster through RAY_ADDRESS, as it would join a multi-node one
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    proc = subprocess.run(
        [sys.executable, "-m", "bertzoo.cli", "embed", "--engine", "ray", "--ray-actors", "1", "--input",
         str(corpus["source"]), "--output", f"{out}/", "--resume", "--model", str(corpus["model"]), "--shard-size",
         str(SHARD), "--chunk-size", str(CHUNK), "--threads", "1", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming {out}: {partial['rows_done']:,} of {N_ROWS:,} rows done" in proc.stderr
    assert f"embedding {N_ROWS - partial['rows_done']:,} rows" in proc.stderr
    manifest = assert_same_folder(out, corpus["reference"])
    assert manifest["timing"]["runs"] == 2 and manifest["timing"]["engine"]["name"] == "ray"


def test_an_error_raised_in_an_actor_reaches_the_caller_as_itself(cluster: Any, tiny_bert: Path,
                                                                 tmp_path: Path) -> None:
    from bertzoo.errors import InputError
    from bertzoo.integrations.ray_corpus import RayOptions, embed_to_folder_ray

    source = tmp_path / "in.txt"
    source.write_text("short\n" + "long " * 60 + "\nshort again\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"^text 1 has \d+ tokens, more than the maximum length 32"):
        embed_to_folder_ray(str(source), tmp_path / "out", tiny_bert, truncate="error", threads=1,
                            ray_options=RayOptions(actors=1))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"] == []


def test_plan_and_reads_of_a_folder_of_files_give_the_single_files_rows(tmp_path: Path) -> None:
    from bertzoo.integrations.ray_corpus import _read_chunks, input_files, input_sources, plan_chunks

    lines = _lines(1_000, seed=2)
    whole = tmp_path / "whole.jsonl"
    whole.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines), encoding="utf-8")
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, (a, b) in enumerate([(0, 130), (130, 131), (131, 640), (640, 1_000)]):  # chunks straddle files
        body = "".join(json.dumps({"text": t}) + "\n\n" for t in lines[a:b])  # blank lines are skipped
        (parts / f"part-{k}.jsonl").write_text(body, encoding="utf-8")
    (parts / "notes.md").write_text("not an input")
    assert [Path(p).name for p in input_files(str(parts))] == [f"part-{k}.jsonl" for k in range(4)]
    assert input_files(str(parts / "part-*.jsonl")) == input_files(str(parts))

    one_record, one_chunks = plan_chunks(input_sources(str(whole), None, None), str(whole), 300, 64)
    assert one_record == {"path": str(whole), "format": "jsonl", "field": "text", "rows": 1_000,
                          "bytes": whole.stat().st_size, "sha256": bertzoo.corpus.file_digest(whole)[0]}
    sources = input_sources(str(parts), None, None)
    record, chunks = plan_chunks(sources, str(parts), 300, 64)
    assert record["rows"] == 1_000 and [f["rows"] for f in record["files"]] == [130, 1, 509, 360]
    assert [(c.start, c.count) for c in chunks] == [(c.start, c.count) for c in one_chunks]
    assert chunks[-1].end == {"file": 3, "offset": (parts / "part-3.jsonl").stat().st_size - 1, "line": 720}
    texts = [t for table in _read_chunks(sources, chunks) for t in table.column("text").to_pylist()]
    assert texts == lines
    assert [c.count for c in chunks][:6] == [64, 64, 64, 64, 44, 64]  # cut at the shard's end, as locally


def test_bertzoo_never_imports_ray_and_a_missing_extra_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import bertzoo, bertzoo.integrations, bertzoo.cli.embed\n"
        "assert 'ray' not in sys.modules, 'import bertzoo imported ray'\n"
        "sys.modules['ray'] = None  # as if the extra were not installed\n"
        "from bertzoo.integrations.ray import RayMissingError, require_ray\n"
        "try:\n"
        "    require_ray()\n"
        "except RayMissingError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'bertzoo[ray]'" in proc.stdout
