"""The five component interfaces, as small Protocols (torchtune style).

Shape legend used throughout: ``B`` batch, ``S`` query length, ``S_k`` key length (cache +
new tokens, or encoder length for cross-attention), ``H`` hidden size, ``h`` heads, ``d`` head
size (H / h), ``T`` total real tokens of a packed batch.

Every component is built by the factory as ``target(spec, **dependencies, **options)`` where
``spec`` is the :class:`bertzoo.spec.ModelSpec` and ``options`` were validated by the
component's own options model. The reference implementations live in
:mod:`bertzoo.plugins.eager`; copy them when writing your own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import Tensor


@dataclass
class AttentionCapabilities:
    """What an attention implementation declares it can do (data, not discovered by trial).

    ``attention="auto"`` chooses among implementations by these, and an explicitly chosen
    implementation asked for something it did not declare raises a clear error.
    """

    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")
    causal: bool = True
    cross_attention: bool = True
    kv_cache: bool = True
    returns_weights: bool = False
    head_mask: bool = False
    dropout: bool = True
    varlen: bool = False  # accepts packed [T, h, d] input with cu_seqlens
    padded: bool = True  # accepts padded [B, h, S, d] input
    position_bias: bool = False  # honours AttentionMask.bias (an additive score bias: MPNet, ALiBi)
    window: bool = False  # honours AttentionMask.window (local attention: ModernBERT's local layers)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AttentionMask:
    """What each query may see, described once per forward and shared by every layer.

    Implementations turn it into the form their kernel wants (additive float for eager,
    boolean for SDPA, ``cu_seqlens`` for variable-length kernels) and may cache that form in
    ``cache`` so the conversion happens once per forward, not once per layer.

    Attributes:
        key_padding: ``(B, S_k)`` bool, True where the key is a real token; None = all real.
        causal: queries see only keys at or before their own position.
        query_offset: positions already in the KV cache before the first query; a causal
            query ``i`` sees keys ``<= i + query_offset``.
        cu_seqlens: packed input only: ``(B + 1,)`` int32 offsets of each sequence in ``T``.
        max_seqlen: packed input only: longest sequence.
        explicit: a user-given ``(B|1, 1|h, S, S_k)`` mask used as is (no causality added):
            float = additive (0 attend, large negative masked), bool = True attend.
        cache: conversions made during this forward (see :mod:`bertzoo.model.masks`: ``boolean_mask``,
            ``additive_mask``, ``empty_rows``); implementations share them across layers.
        bias: an additive score bias shared by every layer (a position bias: MPNet's relative
            buckets, ALiBi), added to ``q·kᵀ·scale`` before the mask. Padded: broadcastable to
            ``(B, h, S, S_k)``; packed: ``(1|h, L, L)`` or ``(1, 1|h, L, L)`` with ``L >= max_seqlen``,
            and sequence ``i`` (length ``n``) uses the top-left ``n × n`` block (a bias that depends
            on ``j - i`` only, as relative position biases do). None = no bias.
        window: local attention: query ``i`` sees key ``j`` only if ``|i + query_offset - j| <=
            window`` (positions within the sequence; packed: within each sequence). None = all keys.
            Layers derive a windowed mask with :func:`bertzoo.model.masks.windowed`.
    """

    key_padding: Tensor | None = None
    causal: bool = False
    query_offset: int = 0
    cu_seqlens: Tensor | None = None
    max_seqlen: int = 0
    explicit: Tensor | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    bias: Tensor | None = None
    window: int | None = None


@dataclass
class Positions:
    """Per-forward position information, made once and handed to every layer call as ``positions=``.

    An embedding that needs it defines ``position_state(position_ids, *, max_len, dtype) ->
    Positions`` (see :meth:`bertzoo.model.BertModel.forward`); the trunk calls it once per forward
    with each token's position within its sequence and puts :attr:`bias` on the self-attention
    :class:`AttentionMask`. Layers that do not take ``positions`` never see it.

    Attributes:
        position_ids: ``(B|1, S)`` padded, or ``(T,)`` packed: each token's position in its sequence.
        max_len: ``S`` padded, the longest sequence packed.
        bias: an additive score bias for every layer (:attr:`AttentionMask.bias`), or None.
        cache: tables the layers derive from the positions (rotary cos/sin per base), made by the
            first layer that needs them and shared by the others.
    """

    position_ids: Tensor
    max_len: int
    bias: Tensor | None = None
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def packed(self) -> bool:
        return self.position_ids.dim() == 1


@runtime_checkable
class Attention(Protocol):
    """The attention operation only; projections stay in the layer (checkpoint keys never depend on it).

    Reference: :class:`bertzoo.plugins.eager.EagerAttention`.
    """

    capabilities: ClassVar[AttentionCapabilities]

    def __call__(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        mask: AttentionMask,
        dropout_p: float,
        scale: float,
        need_weights: bool,
        head_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:
        """Padded: q ``(B, h, S, d)``, k/v ``(B, h, S_k, d)`` → context ``(B, h, S, d)``,
        weights ``(B, h, S, S_k)`` or None. Packed (``varlen``): q/k/v ``(T, h, d)`` → ``(T, h, d)``.

        Rows whose query sees no key return zeros. ``head_mask`` is broadcastable to
        ``(B, h, S, S_k)`` (the trunk passes ``(1, h, 1, 1)``) and scales the attention
        probabilities after dropout (eager definition); the returned weights include it.
        """
        ...


@runtime_checkable
class Embedding(Protocol):
    """Token ids (or ``inputs_embeds``) → hidden states. Reference: ``eager.BertEmbeddings``.

    Must expose ``word_embeddings`` (an ``nn.Embedding``) so an MLM decoder can be tied to it.
    """

    word_embeddings: torch.nn.Embedding

    def __call__(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> Tensor:
        """``(B, S)`` ids or ``(B, S, H)`` embeds → ``(B, S, H)``; default positions are
        ``arange(S) + past_key_values_length``, default token types zeros."""
        ...


@dataclass
class LayerOutput:
    """What one layer returns. ``present`` is this layer's updated cache entry when caching."""

    hidden_states: Tensor
    self_attention: Tensor | None = None  # (B, h, S, S_k) when weights were asked for
    cross_attention: Tensor | None = None  # (B, h, S, S_enc)
    present: Any = None


@runtime_checkable
class Layer(Protocol):
    """One transformer block built around an attention component. Reference: ``eager.BertLayer``.

    Built as ``target(spec, attention=..., cross_attention=... | None, **options)``.
    A layer that also runs packed ``(T, H)`` input (mask with ``cu_seqlens``, no cache or
    cross-attention) says so at registration: ``registry.register("layer", name, target,
    supports_packed=True)``. Without it the model runs every call padded, and ``--explain`` /
    ``Choice.packed_reason`` say so (:func:`bertzoo.selection.packed_choice`).
    """

    def __call__(
        self,
        hidden_states: Tensor,
        *,
        mask: AttentionMask,
        head_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_mask: AttentionMask | None = None,
        past_key_value: Any = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        attention: Attention | None = None,
    ) -> LayerOutput:
        """``(B, S, H)`` (or packed ``(T, H)``) → :class:`LayerOutput` with the same shape.

        Optional extensions (a layer opts in by accepting them; the trunk and the factory check):
        ``positions=`` (:class:`Positions`, when the embedding defines ``position_state``); the
        constructor keyword ``layer_index`` (its index among the built layers: per-layer options such
        as a local window or a rotary base); a classmethod ``final_norm(spec, **options) -> Module |
        None`` (pre-LayerNorm blocks: the norm the trunk applies after the last layer, key ``final_norm``).

        ``past_key_value`` is a :class:`bertzoo.model.cache.LayerCache` view (``update`` / ``cross`` /
        ``set_cross``), whatever cache type the caller gave. ``attention`` replaces the built
        attention op(s) for this call only; the trunk passes it only when the call needs a
        capability the built op lacks (weights, head mask), so a layer may omit the argument
        if it never needs to serve such calls. ``head_mask`` is ``(1, h, 1, 1)`` or None.
        """
        ...


@runtime_checkable
class Pooler(Protocol):
    """Sequence → one vector. Reference: ``eager.BertPooler`` (``cls-tanh``).

    Built as ``target(spec, **options)``. The built-in parameter-free poolers are
    :func:`bertzoo.heads.pooling.pool` with a fixed mode; reuse it rather than rewriting the math.
    The trunk checks the output: anything but a ``(B, H)`` tensor raises
    :class:`~bertzoo.errors.IncompatibleComponentError` naming the pooler.
    """

    def __call__(
        self, hidden_states: Tensor, attention_mask: Tensor | None = None, *, cu_seqlens: Tensor | None = None
    ) -> Tensor:
        """Padded: ``(B, S, H)`` and an optional ``(B, S)`` mask (nonzero = real token) → ``(B, H)``.
        Packed: ``(T, H)`` real tokens and ``cu_seqlens`` ``(B + 1,)`` offsets → ``(B, H)``, equal to
        the padded result on the same sequences."""
        ...


@runtime_checkable
class Head(Protocol):
    """A task model: owns the trunk as ``bert`` plus its own modules under HF's key names.

    Built as ``target(bert, spec, **options)``. Class attributes tell the factory and the
    checkpoint loader what they need: whether the trunk keeps its pooler, and which keys are
    the task-specific ones that are re-initialised when ``num_labels`` changes.
    """

    uses_pooler: ClassVar[bool]
    classifier_keys: ClassVar[tuple[str, ...]]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The trunk's forward arguments plus the head's labels → the head's output dataclass."""
        ...


# -- the main job's task contracts ------------------------------------------------------------------------
#
# A head registers the tasks it serves (``registry.register("head", name, target, task="embed")``, or a
# tuple of tasks) and implements that task's method below. The inference pipeline runs the trunk, hands
# the head a :class:`TaskStates` and calls the method; it never reads a head's other attributes.

#: the built-in main-job tasks and the head each uses when none is named (and the checkpoint records none
#: that serves it)
TASK_DEFAULT_HEADS: dict[str, str] = {
    "embed": "sentence-embedding",
    "classify": "sequence-classification",
    "rerank": "sequence-classification",
    "fill-mask": "masked-lm",
    "token-classify": "token-classification",
    "answer": "question-answering",
}


@dataclass
class TaskStates:
    """One batch of the trunk's last hidden states, as the pipeline hands them to a task contract.

    Packed (``cu_seqlens`` set): ``hidden`` is ``(T, H)`` real tokens only, ``input_ids`` ``(T,)``.
    Padded (``attention_mask`` set): ``hidden`` is ``(B, S, H)``, ``input_ids`` / ``attention_mask``
    ``(B, S)``. A head that only handles padded states declares ``packed_tasks = False`` on its class.
    """

    hidden: Tensor
    input_ids: Tensor
    cu_seqlens: Tensor | None = None
    attention_mask: Tensor | None = None
    token_type_ids: Tensor | None = None
    max_seqlen: int = 0

    @property
    def packed(self) -> bool:
        return self.cu_seqlens is not None

    @property
    def batch_size(self) -> int:
        if self.cu_seqlens is not None:
            return int(self.cu_seqlens.numel()) - 1
        return int(self.hidden.shape[0])


@runtime_checkable
class EmbedTask(Protocol):
    """``task="embed"``: one vector per text.

    ``embedding_dimension`` is the vectors' width; ``embedding_normalize`` says whether the pipeline
    L2-normalises them by default (after merging a long text's windows, so the head returns them
    unnormalised).
    """

    embedding_dimension: int
    embedding_normalize: bool

    def embed_states(self, states: TaskStates) -> Tensor:
        """``(B, D)`` float32 vectors, not normalised."""
        ...


@runtime_checkable
class ClassifyTask(Protocol):
    """``task="classify"`` (and ``"rerank"``): one row of logits per text or text pair.

    ``id2label`` maps class index to label name; ``problem_type`` is HF's (None,
    ``"regression"``, ``"single_label_classification"``, ``"multi_label_classification"``) and picks
    how logits become scores.
    """

    id2label: dict[int, str]
    problem_type: str | None

    def classify_states(self, states: TaskStates) -> Tensor:
        """``(B, num_labels)`` logits."""
        ...


@runtime_checkable
class FillMaskTask(Protocol):
    """``task="fill-mask"``: vocabulary logits at the mask positions only."""

    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``positions``: bool, the shape of ``states.input_ids``, True at mask tokens → ``(M, V)``
        logits, one row per True position in row-major order."""
        ...


@runtime_checkable
class TokenClassifyTask(Protocol):
    """``task="token-classify"``: one row of logits per token (NER and the like)."""

    id2label: dict[int, str]

    def token_logits(self, states: TaskStates) -> Tensor:
        """``(T, num_labels)`` packed or ``(B, S, num_labels)`` padded."""
        ...


@runtime_checkable
class AnswerTask(Protocol):
    """``task="answer"``: extractive question answering."""

    def span_logits(self, states: TaskStates) -> tuple[Tensor, Tensor]:
        """Start and end logits per token: ``(T,)`` each packed, ``(B, S)`` padded."""
        ...


# -- compute precisions ---------------------------------------------------------------------------------


@runtime_checkable
class Precision(Protocol):
    """A compute precision (``kind="precision"``): how a loaded model's arithmetic runs.

    Built as ``target(**options)``; :meth:`apply` changes the model in place for inference (e.g.
    swaps Linear layers). ``calibrate`` runs the float model on a few real texts, for precisions
    that need activation statistics. Metadata at registration: ``devices`` (tuple of device
    types it runs on), ``aliases`` (extra names accepted by ``dtype=`` / ``--compute``).
    """

    def apply(self, model: Any, *, calibrate: Any = None) -> Any:
        """Convert ``model`` (a head with its trunk as ``.bert``) in place and return it."""
        ...
