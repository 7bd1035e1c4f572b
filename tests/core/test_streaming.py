"""bertzoo.corpus, bertzoo.inference.vectors and the truncation policies, on a tiny random model in a tmp dir.

- ``embed_stream`` equals ``bertzoo.embed`` for every chunk size, pulls its input lazily, and
  reports token counts and truncation per text.
- Truncation: ``encode_fitted`` cuts exactly as the tokenizer does; ``chunk`` windows equal a
  transformers forward on each window, averaged by token count; ``error`` names the text.
- Output controls: ``dim`` cut + re-normalisation, float16 / int8 (per-vector scale) / binary
  (packed sign bits), each restored within its stated error.
- The shard folder: shards + manifest (checksums, rows, counts, truncation summary), every format
  of the one format table read back by ``load_folder``, txt / jsonl / parquet input, bad lines
  stop before anything is written, and ``resume`` refuses a changed model, option or input
  (a bertzoo 0.1 manifest's ``dtype`` / ``quantize`` read as today's ``compute``).
- The old module names (``bertzoo.streaming``, ``bertzoo.outputs``) still give the same objects.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo
from bertzoo.corpus import (
    MANIFEST,
    SHARD_FORMATS,
    InputSource,
    embed_stream,
    embed_to_folder,
    file_digest,
    load_folder,
    read_manifest,
    read_texts,
)
from bertzoo.corpus.shards import shard_format
from bertzoo.errors import InputError
from bertzoo.inference.vectors import restore_vectors, shape_vectors
from bertzoo.runner import Pipeline, TruncationWarning

transformers = pytest.importorskip("transformers", reason="transformers is the oracle for windows (dev extra)")
MAX_POSITIONS = 32  # the tiny_bert fixture's (tests/conftest.py)


@pytest.fixture(scope="module")
def tiny(tiny_bert: Path) -> Path:
    return tiny_bert


def texts_of(n: int) -> list[str]:
    # lengths from 2 to ~60 tokens: about a third beyond the 32-token maximum
    return [f"text {i}: " + " ".join(["word", "naïve", "東京", "data"][j % 4] for j in range(i % 40)) for i in range(n)]


TEXTS = texts_of(120) + ["", "ok"]


def stream(tiny: Path, texts: list[str], **options: Any) -> list[Any]:
    options.setdefault("truncate", "silent")
    return list(embed_stream(texts, model=tiny, threads=1, **options))


# -- embed_stream -------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_embed_stream_equals_embed_in_input_order(tiny: Path, chunk_size: int) -> None:
    expected = bertzoo.embed(TEXTS, model=tiny, truncate="silent", threads=1)
    chunks = stream(tiny, TEXTS, chunk_size=chunk_size)
    assert [c.start for c in chunks] == list(range(0, len(TEXTS), chunk_size))
    np.testing.assert_allclose(np.concatenate([c.vectors for c in chunks]), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([c.rows for c in chunks]), np.arange(len(TEXTS)))
    tokens = np.concatenate([c.tokens for c in chunks])
    pipe = bertzoo.runner.get_pipeline("embed", tiny)
    np.testing.assert_array_equal(tokens, pipe.tokenizer.count_tokens(TEXTS, truncation=False))
    np.testing.assert_array_equal(np.concatenate([c.truncated for c in chunks]), tokens > MAX_POSITIONS)


def test_embed_stream_reads_its_input_lazily(tiny: Path) -> None:
    pulled = 0

    def source() -> Any:
        nonlocal pulled
        for i in range(10**9):  # endless: only a lazy consumer can finish
            pulled += 1
            yield f"line {i}"

    chunks = embed_stream(source(), model=tiny, chunk_size=50, threads=1)
    first, second = next(chunks), next(chunks)
    assert (first.start, second.start, len(second)) == (0, 50, 50)
    assert pulled == 100
    chunks.close()


def test_embed_stream_warns_once_at_the_end_and_checks_items(tiny: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunks = stream(tiny, TEXTS, chunk_size=10, truncate="warn")
    cut = int(sum(c.truncated.sum() for c in chunks))
    assert cut > 0
    messages = [str(w.message) for w in caught if issubclass(w.category, TruncationWarning)]
    assert messages == [f"{cut} of {len(TEXTS)} texts truncated at {MAX_POSITIONS} tokens"]
    with pytest.raises(InputError, match="item 3 is int"):
        stream(tiny, ["a", "b", "c", 4], chunk_size=2)
    with pytest.raises(InputError, match="precision='int4' is unknown"):
        stream(tiny, ["a"], precision="int4")
    with pytest.raises(InputError, match="dim=33 is out of range"):
        stream(tiny, ["a"], dim=33)


# -- truncation policies ---------------------------------------------------------------------------------


def test_encode_fitted_cuts_exactly_like_the_tokenizer(tiny: Path) -> None:
    pipe = Pipeline(tiny)
    tok = pipe.tokenizer
    texts = [*TEXTS, "Ünïcödé " * 50, "[MASK] " * 40]
    fitted = tok.encode_fitted(texts)
    reference = tok.encode_ids(texts)
    assert fitted.sequences.ids == reference.ids
    np.testing.assert_array_equal(fitted.truncated, reference.truncated)
    np.testing.assert_array_equal(fitted.tokens, tok.count_tokens(texts, truncation=False))


def test_windows_cover_the_text_with_specials_in_each(tiny: Path) -> None:
    tok = Pipeline(tiny).tokenizer
    texts = ["short one", "word " * 100, "", "two " * 31]  # 102 and 33 tokens
    fitted = tok.encode_fitted(texts, windows=True)
    full = tok.encode_ids(texts, truncation=False).ids
    assert fitted.owner is not None and fitted.owner.tolist() == [0, 1, 1, 1, 1, 2, 3, 3]
    assert not fitted.truncated.any() and fitted.tokens.tolist() == [4, 102, 2, 33]
    for i, ids in enumerate(full):
        windows = [w for w, o in zip(fitted.sequences.ids, fitted.owner, strict=True) if o == i]
        assert all(len(w) <= MAX_POSITIONS and w[0] == tok.cls_id and w[-1] == tok.sep_id for w in windows)
        assert [t for w in windows for t in w[1:-1]] == ids[1:-1]  # non-overlapping, in order


def test_chunk_policy_averages_windows_by_token_count(tiny: Path) -> None:
    pipe = Pipeline(tiny)
    texts = ["a short text", "word naïve data " * 31]  # 93 content tokens: windows of 30, 30, 30, 3
    got = pipe.embed(texts, truncate="chunk", normalize=True)
    windows = pipe.tokenizer.encode_fitted(texts, windows=True)
    hf = transformers.BertModel.from_pretrained(tiny).eval()
    pooled, weights = [], []
    with torch.no_grad():
        for ids, owner in zip(windows.sequences.ids, windows.owner, strict=True):
            if owner == 1:
                pooled.append(hf(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(0))
                weights.append(len(ids))
    w = torch.tensor(weights, dtype=torch.float32)[:, None]
    expected = (torch.stack(pooled) * w).sum(0) / w.sum()
    expected = expected / expected.norm()
    assert len(weights) == 4
    np.testing.assert_allclose(got[1], expected.numpy(), atol=1e-5)
    # a text that fits is embedded as with any other policy
    np.testing.assert_allclose(got[0], pipe.embed(texts[:1], normalize=True)[0], atol=1e-6)


def test_error_policy_names_the_first_long_text_and_its_tokens(tiny: Path) -> None:
    texts = ["fits", "also fits", "word " * 40, "word " * 50]
    with pytest.raises(InputError, match=r"text 2 has 42 tokens, more than the maximum length 32"):
        bertzoo.embed(texts, model=tiny, truncate="error")
    with pytest.raises(InputError, match=r"text 7 has 42 tokens"):  # index in the stream, not in the chunk
        stream(tiny, ["x"] * 5 + texts, chunk_size=5, truncate="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bertzoo.embed(texts, model=tiny, truncate="silent")  # no warning
    with pytest.raises(InputError, match="truncate='drop' is unknown"):
        bertzoo.embed(texts, model=tiny, truncate="drop")


# -- output controls ------------------------------------------------------------------------------------


def test_output_precisions_and_dim() -> None:
    torch.manual_seed(0)
    raw = torch.randn(50, 40)
    raw[3] = 0.0  # a zero vector stays zero in every form
    unit = torch.nn.functional.normalize(raw, dim=-1).numpy()

    f32 = shape_vectors(raw, normalize=True)
    np.testing.assert_allclose(f32.values, unit, atol=1e-7)
    assert f32.scales is None and f32.values.dtype == np.float32

    cut = shape_vectors(raw, normalize=True, dim=12).values
    assert cut.shape == (50, 12)
    np.testing.assert_allclose(cut, torch.nn.functional.normalize(raw[:, :12], dim=-1).numpy(), atol=1e-7)
    np.testing.assert_allclose(shape_vectors(raw, normalize=False, dim=12).values, raw[:, :12].numpy())

    half = shape_vectors(raw, normalize=True, precision="float16").values
    assert half.dtype == np.float16
    np.testing.assert_allclose(restore_vectors(half, "float16"), unit, atol=5e-4)

    q = shape_vectors(raw, normalize=True, precision="int8")
    assert q.values.dtype == np.int8 and q.scales is not None and q.scales.shape == (50,)
    assert np.abs(q.values).max(axis=1)[np.arange(50) != 3].min() == 127  # symmetric per-vector scale
    error = np.abs(restore_vectors(q.values, "int8", scales=q.scales) - unit)
    assert (error <= q.scales[:, None] / 2 + 1e-7).all()

    bits = shape_vectors(raw, normalize=True, precision="binary").values
    assert bits.shape == (50, 5) and bits.dtype == np.uint8
    np.testing.assert_array_equal(np.unpackbits(bits, axis=1)[:, :40], (unit > 0).astype(np.uint8))
    signs = restore_vectors(bits, "binary", dim=40)
    np.testing.assert_array_equal(signs[0], np.where(unit[0] > 0, 1.0, -1.0))
    with pytest.raises(InputError, match="need their per-vector scales"):
        restore_vectors(q.values, "int8")


# -- the shard folder ---------------------------------------------------------------------------------------


def write_lines(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


def run_folder(tiny: Path, source: Path | InputSource, out: Path, **options: Any) -> dict[str, Any]:
    src = source if isinstance(source, InputSource) else InputSource.from_path(str(source))
    options.setdefault("shard_size", 25)
    options.setdefault("chunk_size", 10)
    return embed_to_folder(src, out, tiny, threads=1, **options)


def test_folder_of_npy_shards_and_manifest(tiny: Path, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.txt", TEXTS)
    said: list[str] = []
    manifest = run_folder(tiny, source, tmp_path / "out", say=said.append)
    expected = bertzoo.embed(TEXTS, model=tiny, truncate="silent", threads=1)
    vectors, rows = load_folder(tmp_path / "out")
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_array_equal(rows["row"], np.arange(len(TEXTS)))
    tokens = Pipeline(tiny).tokenizer.count_tokens(TEXTS, truncation=False)
    np.testing.assert_array_equal(rows["tokens"], tokens)
    np.testing.assert_array_equal(rows["truncated"], tokens > MAX_POSITIONS)

    assert manifest == read_manifest(tmp_path / "out")
    assert manifest["complete"] and manifest["rows_done"] == manifest["input"]["rows"] == len(TEXTS)
    assert [s["rows"] for s in manifest["shards"]] == [[0, 25], [25, 50], [50, 75], [75, 100], [100, 122]]
    for shard in manifest["shards"]:
        for entry in shard["files"].values():
            assert file_digest(tmp_path / "out" / entry["name"])[0] == entry["sha256"]
    assert manifest["input"]["sha256"] == file_digest(source)[0]
    cut = int((tokens > MAX_POSITIONS).sum())
    summary = f"{cut} of {len(TEXTS)} texts truncated at {MAX_POSITIONS} tokens"
    assert manifest["truncation"]["truncated"] == cut and manifest["truncation"]["summary"] == summary
    assert said == [f"warning: {summary}"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [MANIFEST] + [f"shard-{i:05d}{s}" for i in range(5) for s in (".npy", ".rows.npy")])

    # a changed shard is caught when the folder is read
    first = tmp_path / "out" / "shard-00000.npy"
    data = bytearray(first.read_bytes())
    data[-1] ^= 1
    first.write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match its checksum"):
        load_folder(tmp_path / "out")


def test_int8_binary_and_dim_in_the_folder(tiny: Path, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.txt", TEXTS)
    unit = bertzoo.embed(TEXTS, model=tiny, truncate="silent", threads=1, normalize=True)
    manifest = run_folder(tiny, source, tmp_path / "q", precision="int8", normalize=True)
    q, rows = load_folder(tmp_path / "q")
    assert manifest["output"]["dtype"] == "int8" and q.dtype == np.int8
    np.testing.assert_allclose(restore_vectors(q, "int8", scales=rows["scale"]), unit, atol=float(rows["scale"].max()))

    run_folder(tiny, source, tmp_path / "b", precision="binary", dim=20)
    bits, _ = load_folder(tmp_path / "b")
    assert bits.shape == (len(TEXTS), 3) and bits.dtype == np.uint8
    np.testing.assert_array_equal(np.unpackbits(bits, axis=1, count=20), (unit[:, :20] > 0).astype(np.uint8))


def test_jsonl_input_skips_blank_lines_and_stops_on_a_bad_line(tiny: Path, tmp_path: Path) -> None:
    records = "".join(json.dumps({"body": t, "id": i}) + "\n" + ("\n" if i % 10 == 0 else "") for i, t in enumerate(TEXTS))
    (tmp_path / "in.jsonl").write_text(records, encoding="utf-8")
    run_folder(tiny, InputSource.from_path(str(tmp_path / "in.jsonl"), "body"), tmp_path / "out")
    vectors, _ = load_folder(tmp_path / "out")
    np.testing.assert_allclose(vectors, bertzoo.embed(TEXTS, model=tiny, truncate="silent", threads=1), atol=1e-6)

    (tmp_path / "bad.jsonl").write_text(records + '{"body": broken\n', encoding="utf-8")
    bad_line = records.count("\n") + 1
    with pytest.raises(InputError, match=f"line {bad_line} is not valid JSON"):
        run_folder(tiny, InputSource.from_path(str(tmp_path / "bad.jsonl"), "body"), tmp_path / "bad")
    assert list((tmp_path / "bad").iterdir()) == []  # scanned before anything was written


def test_parquet_input_and_shards(tiny: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="parquet needs pyarrow (dev extra; optional at run time)")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": list(range(len(TEXTS))), "text": TEXTS}), tmp_path / "in.parquet", row_group_size=30)
    source = InputSource.from_path(str(tmp_path / "in.parquet"))
    manifest = run_folder(tiny, source, tmp_path / "out", format="parquet", precision="int8")
    expected = bertzoo.embed(TEXTS, model=tiny, truncate="silent", threads=1)
    tables = [pq.read_table(tmp_path / "out" / s["files"]["table"]["name"]) for s in manifest["shards"]]
    table = pa.concat_tables(tables)
    assert table.column_names == ["row", "embedding", "tokens", "truncated", "scale"]
    assert table.column("row").to_pylist() == list(range(len(TEXTS)))
    q = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(len(TEXTS), 32)
    scales = np.asarray(table.column("scale"))
    np.testing.assert_allclose(restore_vectors(q, "int8", scales=scales), expected, atol=float(scales.max()))

    # restart from the middle of a row group (what resume does)
    rows = [r for r, _, _ in source.rows(offset=45)]
    assert rows == TEXTS[45:]
    with pytest.raises(InputError, match="has no column 'body'"):
        list(InputSource.from_path(str(tmp_path / "in.parquet"), "body").rows())
    with pytest.raises(InputError, match="column 'id' holds int64, not strings"):
        list(InputSource.from_path(str(tmp_path / "in.parquet"), "id").rows())


@pytest.mark.parametrize("fmt", SHARD_FORMATS)
@pytest.mark.parametrize("precision", ["float16", "int8", "binary"])
def test_every_shard_format_reads_back_what_it_wrote(tiny: Path, tmp_path: Path, fmt: str, precision: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="parquet needs pyarrow (dev extra; optional at run time)")
    source = write_lines(tmp_path / "in.txt", TEXTS)
    manifest = run_folder(tiny, source, tmp_path / "out", format=fmt, precision=precision, dim=20)
    pipe = bertzoo.runner.get_pipeline("embed", tiny)
    fitted = pipe.encode_for_embedding(TEXTS, "silent")
    raw = pipe.embed_encoded(fitted, normalize=False, threads=1)
    expected = shape_vectors(raw, normalize=pipe.embedding_normalize, dim=20, precision=precision)

    vectors, rows = load_folder(tmp_path / "out")
    assert vectors.dtype == expected.values.dtype and vectors.shape == expected.values.shape
    np.testing.assert_array_equal(rows["row"], np.arange(len(TEXTS)))
    np.testing.assert_array_equal(rows["tokens"], fitted.tokens)
    np.testing.assert_array_equal(rows["truncated"], fitted.truncated)
    got = restore_vectors(vectors, precision, scales=rows["scale"] if precision == "int8" else None, dim=20)
    reference = restore_vectors(expected.values, precision, scales=expected.scales, dim=20)
    if precision == "binary":  # batches differ (chunks of 10 vs one call): a sign near 0 may flip
        assert np.mean(got != reference) < 0.01
    else:
        np.testing.assert_allclose(got, reference, atol=2e-2 if precision == "int8" else 1e-3)
    assert manifest["output"]["layout"] == shard_format(fmt).layout(precision)
    assert manifest["output"]["stored_width"] == vectors.shape[1] == (3 if precision == "binary" else 20)


def test_unknown_shard_format_names_the_known_ones(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"format='csv' is unknown; use one of npy, parquet"):
        run_folder(tiny, write_lines(tmp_path / "in.txt", ["a"]), tmp_path / "out", format="csv")
    assert not (tmp_path / "out").exists()


def test_resume_continues_and_refuses_a_different_run(tiny: Path, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.txt", TEXTS)
    full = run_folder(tiny, source, tmp_path / "full")

    out = tmp_path / "out"  # a run stopped by its first long text, under truncate='error'
    with pytest.raises(InputError, match="text 23 has 34 tokens"):
        run_folder(tiny, source, out, truncate="error")
    with pytest.raises(InputError, match=r"cannot --resume .*truncate 'error' vs 'warn'"):
        run_folder(tiny, source, out, resume=True)
    shutil.rmtree(out)
    run_folder(tiny, write_lines(tmp_path / "head.txt", TEXTS[:50]), out)
    with pytest.raises(InputError, match="already holds a run"):
        run_folder(tiny, source, out)
    with pytest.raises(InputError, match=r"cannot --resume .*input sha256"):
        run_folder(tiny, source, out, resume=True)

    partial = read_manifest(tmp_path / "full")  # the complete run's manifest, cut back to 2 shards
    partial.update(shards=partial["shards"][:2], rows_done=50, complete=False)
    shutil.rmtree(out)
    shutil.copytree(tmp_path / "full", out)
    (out / MANIFEST).write_text(json.dumps(partial), encoding="utf-8")
    (out / "shard-00002.npy").write_bytes(b"stale")  # an unlisted shard is rewritten
    (out / ".shard-00003.npy.tmp-1-abc").write_bytes(b"partial")  # a killed run's temporary file
    resumed = run_folder(tiny, source, out, resume=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "full").iterdir())
    for name in (p.name for p in out.iterdir() if p.name != MANIFEST):
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    assert {k: v for k, v in resumed.items() if k != "timing"} == {k: v for k, v in full.items() if k != "timing"}

    from safetensors.torch import load_file, save_file

    other = Path(shutil.copytree(tiny, tmp_path / "other"))  # the same model with one weight nudged
    weights = load_file(other / "model.safetensors")
    next(iter(weights.values())).view(-1)[0] += 1e-3
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(InputError, match=r"cannot --resume .*model"):
        embed_to_folder(InputSource.from_path(str(source)), out, other, resume=True, shard_size=25, chunk_size=10)


def test_resume_reads_a_bertzoo_0_1_manifest(tiny: Path, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.txt", TEXTS[:60])
    full = run_folder(tiny, source, tmp_path / "full")
    assert full["options"]["compute"] == "bertzoo:float32" and full["options"]["head"] == "bertzoo:sentence-embedding"

    def legacy_copy(name: str, dtype: str) -> Path:  # cut back to 1 shard, options as bertzoo 0.1 wrote them
        out = Path(shutil.copytree(tmp_path / "full", tmp_path / name))
        old = read_manifest(out)
        options = {k: v for k, v in old["options"].items() if k not in ("compute", "head")}
        old.update(shards=old["shards"][:1], rows_done=25, complete=False,
                   options={"dtype": dtype, "quantize": None, **options})
        (out / MANIFEST).write_text(json.dumps(old), encoding="utf-8")
        return out

    resumed = run_folder(tiny, source, legacy_copy("old", "float32"), resume=True)
    assert resumed["complete"] and resumed["shards"] == full["shards"]
    with pytest.raises(InputError, match=r"cannot --resume .*compute 'bertzoo:bfloat16' vs 'bertzoo:float32'"):
        run_folder(tiny, source, legacy_copy("old-bf16", "bfloat16"), resume=True)


def test_read_texts_keeps_plain_blank_lines_and_reads_pairs(tmp_path: Path) -> None:
    assert read_texts(str(write_lines(tmp_path / "a.txt", ["one", "", "three"]))) == ["one", "", "three"]
    (tmp_path / "b.jsonl").write_text('{"q": "x", "d": "y"}\n\n{"q": "z", "d": "w"}\n', encoding="utf-8")
    assert read_texts(str(tmp_path / "b.jsonl"), field="q", pair_field="d") == [("x", "y"), ("z", "w")]
    (tmp_path / "c.jsonl").write_text('{"q": "x", "d": "y"}\n\n{"q": "z"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 3 has no string field 'd'"):
        read_texts(str(tmp_path / "c.jsonl"), field="q", pair_field="d")


def test_old_module_names_give_the_same_objects() -> None:
    import bertzoo._fs
    import bertzoo.corpus
    import bertzoo.inference.vectors
    import bertzoo.outputs
    import bertzoo.streaming

    for name in bertzoo.streaming.__all__:  # what the old module had, and what its new homes export
        home = next(m for m in (bertzoo.corpus, bertzoo.inference.vectors, bertzoo._fs) if name in m.__all__)
        assert getattr(bertzoo.streaming, name) is getattr(home, name), name
    for name in ("InputSource", "embed_stream", "load_folder", "STORED_DTYPES", "atomic_write", "row_dtype"):
        assert name in bertzoo.streaming.__all__, name
    for name in bertzoo.outputs.__all__:
        assert getattr(bertzoo.outputs, name) is getattr(bertzoo.inference.vectors, name), name
    assert bertzoo.embed_stream is bertzoo.corpus.embed_stream


# -- the command line -------------------------------------------------------------------------------------


def test_cli_truncation_precision_and_folder_switch(tiny: Path, tmp_path: Path, cli: Any) -> None:
    source = write_lines(tmp_path / "in.txt", ["fits", "word " * 40, "also fits"])
    proc = cli("embed", "-i", str(source), "-m", str(tiny), "--truncate", "error", "-o", str(tmp_path / "x.npy"))
    assert proc.returncode == 2 and "text 1 has 42 tokens, more than the maximum length 32" in proc.stderr
    assert not (tmp_path / "x.npy").exists()

    proc = cli("embed", "-i", str(source), "-m", str(tiny), "--precision", "binary", "--dim", "16",
               "-o", str(tmp_path / "x.npy"))
    assert proc.returncode == 0, proc.stderr
    assert "1 of 3 texts truncated at 32 tokens" in proc.stderr
    unit = bertzoo.embed(["fits", "word " * 40, "also fits"], model=tiny, truncate="silent")[:, :16]
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.packbits(unit > 0, axis=1))

    proc = cli("embed", "-i", str(source), "-m", str(tiny), "--precision", "int8", "--truncate", "silent")
    assert proc.returncode == 0 and proc.stderr == ""
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["tokens"], r["truncated"]) for r in records] == [(3, False), (42, True), (4, False)]
    assert all(isinstance(r["scale"], float) and max(map(abs, r["embedding"])) == 127 for r in records)

    proc = cli("embed", "-i", str(source), "-m", str(tiny), "-o", str(tmp_path / "x.npy"), "--resume")
    assert proc.returncode == 2 and "--resume continues a sharded run" in proc.stderr
    proc = cli("embed", "-i", str(source), "-m", str(tiny), "-o", str(tmp_path / "shards"), "--no-progress")
    assert proc.returncode == 0 and "in 1 shards" in proc.stderr
    assert read_manifest(tmp_path / "shards")["truncation"]["summary"] == "1 of 3 texts truncated at 32 tokens"
