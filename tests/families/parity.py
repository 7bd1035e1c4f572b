"""Shared helpers of the family parity tests (tests/families/test_*.py): tiny configs, inputs,
weight copies, output / gradient comparison, tiny tokenizers and model folders.

Import it as ``from parity import ...`` (the test folder is on ``sys.path`` under pytest's
default import mode, as tests/heads does with ``test_head_parity``).

Key names: a bertzoo head keeps its trunk at ``bert.`` whatever the family, and the trunk's keys
are BERT-shaped; :func:`internal_key` maps a transformers key (``roberta.embeddings...``,
``electra.embeddings_project...``) to the bertzoo one with the family's ``base_prefix`` and
``key_renames`` (the same rule the checkpoint layer applies).

Every comparison goes through :func:`record`, which prints ``[family parity] family head what:
max abs diff`` (``pytest -s`` shows them) and keeps the worst value per (family, head) in
:data:`DIFFS` for the summary table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

ATOL = 1e-5

# hidden 32, 2 layers, 4 heads, intermediate 37, 64 positions, dropout off (FAMILIES.md "Tests")
TINY: dict[str, Any] = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)

DIFFS: dict[tuple[str, str], float] = {}

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, this is a tiny corpus for tiny tokenizers.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "Tokenizers split text into pieces; models turn pieces into vectors!",
    "A naïve café résumé: déjà vu in 東京 and Zürich.",
    "What is the answer? The answer is forty-two.",
    "Machine learning models read sentences, questions and passages.",
    "She sells sea shells by the sea shore, 1234 times a day.",
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """One torch thread while a family module runs: tiny tensors otherwise wait at OpenMP barriers
    (several times slower on a busy 2-core machine). Autouse where a module imports it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def record(family: str, head: str, what: str, diff: float) -> float:
    """Print one comparison and keep the worst diff per (family, head); returns ``diff``."""
    print(f"\n[family parity] {family} {head} {what}: max abs diff {diff:.3g}")
    key = (family, head)
    DIFFS[key] = max(DIFFS.get(key, 0.0), diff)
    return diff


# -- weights ----------------------------------------------------------------------------------------
def perturb(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    """Move every parameter off its init (LayerNorms, zero biases), so parity cannot pass by accident."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # tied parameters appear once
            p.add_(scale * torch.randn(p.shape, generator=g))


def internal_key(hf_key: str, base_prefix: str, renames: Sequence[tuple[str, str]] = ()) -> str:
    """A transformers state-dict key → the bertzoo one: ``{base_prefix}.X`` → ``bert.X`` and the
    family's trunk renames (``(file_prefix, internal_prefix)`` pairs) on the trunk part."""
    head_model = hf_key.startswith(base_prefix + ".")
    trunk = hf_key[len(base_prefix) + 1:] if head_model else hf_key
    for file_prefix, ours in renames:
        if trunk.startswith(file_prefix):
            trunk = ours + trunk[len(file_prefix):]
            break
    return f"bert.{trunk}" if head_model else trunk


def copy_weights(hf: torch.nn.Module, ours: torch.nn.Module, base_prefix: str,
                 renames: Sequence[tuple[str, str]] = ()) -> None:
    """Load ``hf``'s state dict into ``ours`` under bertzoo names; every key must match both ways."""
    sd = {internal_key(k, base_prefix, renames): v for k, v in hf.state_dict().items()}
    missing, unexpected = ours.load_state_dict(sd, strict=False)
    assert not missing and not unexpected, f"missing {missing}, unexpected {unexpected}"


# -- inputs -----------------------------------------------------------------------------------------
def batch(vocab_size: int, shape: tuple[int, ...] = (3, 9), *, pad_id: int = 0, seed: int = 1,
          lengths: Sequence[int] | None = None, left: bool = False, token_types: bool = False,
          avoid: Iterable[int] = ()) -> dict[str, torch.Tensor]:
    """Random ids padded with ``pad_id`` (right, or ``left``), the mask, optional 0/1 token types.

    ``shape`` is (B, S) or (B, C, S) (multiple choice). ``lengths`` (one per row of the first
    dimension) default to S, S - 4, S - 2, ...; real tokens never equal ``pad_id`` or ``avoid``.
    """
    g = torch.Generator().manual_seed(seed)
    S = shape[-1]
    banned = torch.tensor(sorted({pad_id, *avoid}))
    ids = torch.randint(0, vocab_size, shape, generator=g)
    bad = torch.isin(ids, banned)
    while bad.any():
        ids[bad] = torch.randint(0, vocab_size, (int(bad.sum()),), generator=g)
        bad = torch.isin(ids, banned)
    if lengths is None:
        lengths = [S if i % 2 == 0 else max(2, S - 4 - i) for i in range(shape[0])]
    mask = torch.zeros(shape, dtype=torch.long)
    for i, n in enumerate(lengths):
        if left:
            mask[i, ..., S - n:] = 1
        else:
            mask[i, ..., :n] = 1
    ids = ids.masked_fill(mask == 0, pad_id)
    out = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        types = torch.zeros(shape, dtype=torch.long)
        types[..., S // 2:] = 1
        out["token_type_ids"] = types * mask
    return out


# -- comparison -------------------------------------------------------------------------------------
def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def max_diff(a: Any, b: Any, mask: torch.Tensor | None = None) -> float:
    """Max |a - b| over all tensors of ``a`` and ``b`` (nested tuples allowed). With ``mask``
    ((B, S), or (B·C, S) flattened), tensors whose leading dims equal the mask's compare only
    where it is nonzero (packed calls leave zeros at padding where transformers computes values)."""
    ta, tb = _tensors(a), _tensors(b)
    assert len(ta) == len(tb), f"{len(ta)} tensors vs {len(tb)}"
    worst = 0.0
    for x, y in zip(ta, tb, strict=True):
        assert x.shape == y.shape, f"{tuple(x.shape)} vs {tuple(y.shape)}"
        x, y = x.detach().double(), y.detach().double()
        if mask is not None and x.dim() >= mask.dim() and tuple(x.shape[:mask.dim()]) == tuple(mask.shape):
            keep = mask.bool()
            x, y = x[keep], y[keep]
        if x.numel():
            worst = max(worst, float((x - y).abs().max()))
    return worst


def output_fields(out: Any) -> dict[str, Any]:
    """An output object (transformers' or bertzoo's) as ``{field: value}`` without None / cache."""
    items = out.items() if hasattr(out, "items") else out.to_dict().items()
    return {k: v for k, v in items if v is not None and k not in ("past_key_values", "cache")}


def compare_outputs(hf_out: Any, bz_out: Any, mask: torch.Tensor | None = None, tol: float = ATOL, *,
                    label: tuple[str, str] | None = None, fields: Sequence[str] | None = None) -> dict[str, float]:
    """Compare every field transformers returns (or ``fields``); both must return the same fields.

    Returns ``{field: max abs diff}``; asserts each is ≤ ``tol``. ``label`` = (family, head)
    records the diffs (see :func:`record`).
    """
    theirs, mine = output_fields(hf_out), output_fields(bz_out)
    if fields is None:
        assert set(mine) == set(theirs), f"fields {sorted(mine)} vs transformers {sorted(theirs)}"
        fields = list(theirs)
    diffs: dict[str, float] = {}
    for name in fields:
        diff = max_diff(mine[name], theirs[name], mask)
        diffs[name] = record(*label, name, diff) if label else diff
        assert diff <= tol, f"{name}: max abs diff {diff:.3g} > {tol}"
    return diffs


def scalar(out: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
    """What to backpropagate: the loss, or the mean of the first output when there is none (over
    the positions where ``mask`` is nonzero, when given)."""
    loss = out["loss"] if "loss" in output_fields(out) else None
    if loss is not None:
        return loss  # type: ignore[no-any-return]
    first = next(v for v in output_fields(out).values() if isinstance(v, torch.Tensor))
    return (first[mask.bool()] if mask is not None else first).float().mean()


def grad_diff(hf: torch.nn.Module, ours: torch.nn.Module, base_prefix: str,
              renames: Sequence[tuple[str, str]] = ()) -> float:
    """Max |grad| difference over every parameter with a gradient (after both ran ``backward``);
    both must have gradients for the same names (tied parameters listed under each name)."""
    g_hf = {internal_key(n, base_prefix, renames): p.grad
            for n, p in hf.named_parameters(remove_duplicate=False) if p.grad is not None}
    g_ours = {n: p.grad for n, p in ours.named_parameters(remove_duplicate=False) if p.grad is not None}
    assert set(g_ours) == set(g_hf), (
        f"gradients only in bertzoo: {sorted(set(g_ours) - set(g_hf))}, only in transformers: "
        f"{sorted(set(g_hf) - set(g_ours))}")
    return max(max_diff(g_ours[n], g_hf[n]) for n in g_hf)


# -- folders and tokenizers -------------------------------------------------------------------------
SPECIALS_ROBERTA = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # fairseq ids 0..3, mask after


def byte_bpe_tokenizer(vocab_size: int = 300) -> Any:
    """A transformers ``RobertaTokenizer`` (byte-level BPE) trained on :data:`CORPUS`; ids
    ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS_ROBERTA, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 2, trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]
    return RobertaTokenizer(vocab=tok.get_vocab(), merges=merges)


def unigram_tokenizer(vocab_size: int = 120) -> Any:
    """A transformers ``XLMRobertaTokenizer`` (SentencePiece Unigram) trained on :data:`CORPUS`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import XLMRobertaTokenizer

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(CORPUS * 2, trainer)
    vocab = [tuple(v) for v in json.loads(tok.to_str())["model"]["vocab"]] + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab)


def wordpiece_tokenizer(folder: Path) -> Any:
    """A transformers ``BertTokenizer`` (WordPiece, uncased) trained on :data:`CORPUS`; vocab.txt in ``folder``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        show_progress=False)
    tok.train_from_iterator(CORPUS * 2, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    return BertTokenizer(vocab=str(folder / "vocab.txt"))  # transformers 5 ignores vocab_file=


def make_folder(hf_model: Any, folder: Path, tokenizer: Any = None) -> Path:
    """``hf_model.save_pretrained(folder)`` plus the tokenizer's files; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def st_folder(transformer_folder: Path, out: Path, pooling: str = "mean", max_seq_length: int | None = None) -> Path:
    """A sentence-transformers folder (Transformer + Pooling) around a saved transformers folder."""
    from sentence_transformers import SentenceTransformer, models

    word = models.Transformer(str(transformer_folder), max_seq_length=max_seq_length)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode=pooling)
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(out))
    return out


def copy_folder(src: Path, dst: Path, drop: Sequence[str] = ()) -> Path:
    """A copy of ``src`` without the files named in ``drop``."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*drop))
    return dst


def summary_table(diffs: Mapping[tuple[str, str], float] | None = None) -> str:
    """The worst diff per (family, head) as a markdown table."""
    rows = sorted((diffs if diffs is not None else DIFFS).items())
    lines = ["| family | head | max abs diff |", "|---|---|---|"]
    lines += [f"| {fam} | {head} | {d:.2g} |" for (fam, head), d in rows]
    return "\n".join(lines)


# -- one family × head: the generic checks every family module parametrizes -------------------------
# head name → transformers class suffix (``Roberta`` + ``ForMaskedLM``); "trunk" is the bare model
SUFFIX = {
    "trunk": "Model", "masked-lm": "ForMaskedLM", "causal-lm": "ForCausalLM", "pretraining": "ForPreTraining",
    "sequence-classification": "ForSequenceClassification", "multiple-choice": "ForMultipleChoice",
    "token-classification": "ForTokenClassification", "question-answering": "ForQuestionAnswering",
}
HEAD_CONFIG: dict[str, dict[str, Any]] = {
    "causal-lm": {"is_decoder": True},
    "sequence-classification": {"num_labels": 3},
    "token-classification": {"num_labels": 5},
}
B, C, S = 3, 4, 9


@dataclass
class FamilyCase:
    """What the generic checks need to know about a family.

    Attributes:
        family: ``model_type`` (the registered family).
        hf_prefix: transformers class prefix (``"Roberta"`` → ``RobertaForMaskedLM``).
        config: transformers config kwargs (the tiny sizes and the family's ids/eps), vocab included.
        base_prefix / renames: the family's key layout (as its Family record).
        token_types: pass 0/1 token types to both models.
        heads: the family's heads (names as in :data:`SUFFIX`).
        labels: per-head label makers overriding :func:`default_labels`.
    """

    family: str
    hf_prefix: str
    config: dict[str, Any]
    base_prefix: str
    renames: tuple[tuple[str, str], ...] = ()
    token_types: bool = True
    heads: tuple[str, ...] = ()
    labels: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])

    @property
    def pad_id(self) -> int:
        return int(self.config.get("pad_token_id", 0))

    def hf_class(self, head: str) -> Any:
        import transformers

        return getattr(transformers, self.hf_prefix + SUFFIX[head])

    def hf_config(self, head: str, **extra: Any) -> Any:
        import transformers

        config_cls = getattr(transformers, f"{self.hf_prefix}Config")
        return config_cls(**{**self.config, **HEAD_CONFIG.get(head, {}), **extra})

    def inputs(self, head: str, *, left: bool = False, seed: int = 1) -> dict[str, torch.Tensor]:
        shape = (B, C, S) if head == "multiple-choice" else (B, S)
        return batch(self.vocab_size, shape, pad_id=self.pad_id, seed=seed, left=left, token_types=self.token_types)


def _g(seed: int = 2) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def token_labels(x: dict[str, torch.Tensor], high: int, keep: float = 1.0) -> torch.Tensor:
    labels = torch.randint(0, high, x["input_ids"].shape, generator=_g())
    drop = (x["attention_mask"] == 0) | (torch.rand(labels.shape, generator=_g(3)) >= keep)
    return labels.masked_fill(drop, -100)


def default_labels(case: FamilyCase, head: str, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Labels that give every head a loss (and gradients through it)."""
    if head in case.labels:
        return case.labels[head](x)
    V = case.vocab_size
    return {
        "trunk": lambda: {},
        "masked-lm": lambda: {"labels": token_labels(x, V, keep=0.4)},
        "causal-lm": lambda: {"labels": token_labels(x, V)},
        "pretraining": lambda: {"labels": (torch.rand(x["input_ids"].shape, generator=_g()) < 0.3).long()},
        "sequence-classification": lambda: {"labels": torch.tensor([2, 0, 1])},
        "multiple-choice": lambda: {"labels": torch.tensor([3, 0, 2])},
        "token-classification": lambda: {"labels": token_labels(x, 5)},
        "question-answering": lambda: {"start_positions": torch.tensor([2, 0, S + 3]),
                                       "end_positions": torch.tensor([5, 3, 4])},
    }[head]()


def hf_folder(case: FamilyCase, head: str, folder: Path, tokenizer: Any = None, seed: int = 0,
              scale: float = 0.05, **config: Any) -> Path:
    """A perturbed random transformers model of ``head`` saved (with ``tokenizer``) to ``folder``."""
    torch.manual_seed(seed)
    model = case.hf_class(head)(case.hf_config(head, **config)).eval()
    perturb(model, seed, scale)
    return make_folder(model, folder, tokenizer)


def head_name(model: Any) -> str | None:
    """The registered head a bertzoo model was built with (short name), or None for a bare trunk."""
    head = getattr(getattr(model, "spec", None), "components", None)
    head = getattr(head, "head", None)
    return None if head is None else str(head.name).split(":")[-1]


ATTENTIONS = ("auto", "eager", "sdpa")


def head_attention_cases(heads: Sequence[str], every_attention: Sequence[str] | None = None,
                         ) -> list[tuple[str, str]]:
    """(head, attention) pairs: every head under ``auto`` (packed where it can), and the heads in
    ``every_attention`` (default: the trunk and sequence-classification) under each attention too
    (heads do not touch attention; the trunk does)."""
    sweep = ("trunk", "sequence-classification") if every_attention is None else every_attention
    return [(h, a) for h in heads for a in (ATTENTIONS if h in sweep else ("auto",))]


def check_head(case: FamilyCase, folder: Path, head: str, attention: str, save_to: Path | None = None) -> float:
    """Load ``folder`` with ``head="auto"`` and ``attention``; compare outputs, loss and gradients with
    transformers (eager) on padded inputs; with ``save_to``, also :func:`check_roundtrip` the loaded
    model. Returns the worst diff."""
    import bertzoo

    hf = case.hf_class(head).from_pretrained(folder, attn_implementation="eager").eval()
    ours = bertzoo.from_pretrained(folder, head="auto", attention=None if attention == "auto" else attention).eval()
    want = None if head == "trunk" else f"{case.family}.{head}"
    assert head_name(ours) == want, f"head='auto' built {head_name(ours)}, expected {want}"
    x = case.inputs(head)
    kwargs = {**x, **default_labels(case, head, x)}
    theirs, mine = hf(**kwargs), ours(**kwargs)
    label = (case.family, head)
    # heads: every position (per-token heads run padded); the bare trunk: real tokens (it may run packed)
    mask = x["attention_mask"] if head == "trunk" else None
    diffs = compare_outputs(theirs, mine, mask, label=label)
    scalar(theirs, mask).backward()
    scalar(mine, mask).backward()
    base = case.base_prefix if head != "trunk" else "\0"
    grad = record(*label, f"gradients ({attention})", grad_diff(hf, ours, base, case.renames))
    assert grad <= ATOL, f"gradients: max abs diff {grad:.3g}"
    if save_to is not None:
        check_roundtrip(case, ours, head, save_to)
    return max(grad, *diffs.values())


def check_roundtrip(case: FamilyCase, model: Any, head: str, out: Path) -> None:
    """A bertzoo model (or the folder it loads from) saved to ``out``: transformers loads it with
    nothing missing, unexpected or mismatched, and computes the same outputs."""
    import bertzoo

    ours = bertzoo.from_pretrained(model, head="auto") if isinstance(model, Path) else model
    ours.eval().save_pretrained(out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == case.family
    assert config["architectures"] == [case.hf_prefix + SUFFIX[head]]
    hf, info = case.hf_class(head).from_pretrained(out, output_loading_info=True, attn_implementation="eager")
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    x = case.inputs(head, seed=5)
    with torch.no_grad():
        diff = max_diff(output_fields(ours(**x))[_first(head)], output_fields(hf.eval()(**x))[_first(head)],
                        x["attention_mask"] if head == "trunk" else None)
    assert record(case.family, head, "after save_pretrained → transformers", diff) <= ATOL


def _first(head: str) -> str:
    return {"trunk": "last_hidden_state", "question-answering": "start_logits"}.get(head, "logits")


def reference_answer(folder: Path, question: str, context: str) -> dict[str, Any]:
    """transformers' question-answering rule (the pipeline was removed in v5): its tokenizer's
    windows, the model's logits, ``select_starts_ends`` (the document-QA pipeline's span selection),
    whole words as character offsets. The same oracle as tests/core/test_tasks.py, for any family."""
    import numpy as np
    import transformers
    from transformers.pipelines.document_question_answering import select_starts_ends

    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(folder)).eval()
    window = min(tok.model_max_length, 384)
    enc = tok(question, context, truncation="only_second", max_length=window, stride=min(window // 2, 128),
              return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
    best: dict[str, Any] | None = None
    with torch.no_grad():
        out = model(**{k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc})
    for span in range(enc["input_ids"].shape[0]):
        p_mask = np.array([sid != 1 for sid in enc.sequence_ids(span)])
        p_mask[0] = False  # the first token takes part in the softmax
        starts, ends, scores, _ = select_starts_ends(
            out.start_logits[span].numpy()[None], out.end_logits[span].numpy()[None], p_mask[None],
            enc["attention_mask"][span].numpy()[None], max_answer_len=15)
        for s, e, score in zip(starts, ends, scores, strict=True):
            first = enc.word_to_chars(span, enc.token_to_word(span, int(s)), sequence_index=1)
            last = enc.word_to_chars(span, enc.token_to_word(span, int(e)), sequence_index=1)
            if best is None or float(score) > best["score"]:
                best = {"score": float(score), "start": first[0], "end": last[1], "answer": context[first[0]:last[1]]}
    assert best is not None
    return best
