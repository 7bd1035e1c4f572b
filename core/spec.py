"""``ModelSpec``: the validated description a model is assembled from.

Architecture fields carry HF ``BertConfig``'s names, so the mapping to and from
``config.json`` is nearly the identity. Components are named, never imported: a spec holds
``{"name": "sdpa", "options": {...}}`` per component kind, and the options are validated in a
second pass against the registered component's own options model, so an error points at
``components.attention.options.window`` rather than at a stack trace.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bertzoo.errors import ComponentNotFoundError, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

COMPONENT_KINDS: tuple[str, ...] = ("embedding", "attention", "layer", "pooler", "head")
# Written for a None that differs from the default where None cannot be written (TOML, --set).
NONE = "none"


class ComponentSpec(BaseModel):
    """One component: a registered name (``sdpa`` or ``plugin:sdpa``) and its options."""

    model_config = ConfigDict(extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_name(cls, data: Any) -> Any:
        # `attention: sdpa` in a YAML file means `attention: {name: sdpa}`
        return {"name": data} if isinstance(data, str) else data


class Components(BaseModel):
    """The component of each kind. ``pooler`` and ``head`` may be None (absent)."""

    model_config = ConfigDict(extra="forbid")

    embedding: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="bert"))
    attention: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="auto"))
    layer: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="bert"))
    pooler: ComponentSpec | None = Field(default_factory=lambda: ComponentSpec(name="cls-tanh"))
    head: ComponentSpec | None = None

    @field_validator("pooler", "head", mode="before")
    @classmethod
    def _none_means_absent(cls, value: Any) -> Any:
        # TOML has no null, and `--set pooler=null` is dropped as "no override": "none" says absent
        return None if isinstance(value, str) and value.lower() == NONE else value


class ModelSpec(BaseModel):
    """Architecture (HF BertConfig names and defaults = bert-base) plus components."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str | None = Field(None, description="preset or checkpoint this spec came from")
    model_type: str = Field("bert", description="the model family (a registered 'family', config.json's model_type)")
    vocab_size: int = Field(30522, gt=0)
    hidden_size: int = Field(768, gt=0)
    num_hidden_layers: int = Field(12, ge=0)
    num_attention_heads: int = Field(12, gt=0)
    intermediate_size: int = Field(3072, gt=0)
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = Field(0.1, ge=0.0, le=1.0, allow_inf_nan=False)
    attention_probs_dropout_prob: float = Field(0.1, ge=0.0, le=1.0, allow_inf_nan=False)
    max_position_embeddings: int = Field(512, gt=0)
    type_vocab_size: int = Field(2, gt=0)
    initializer_range: float = Field(0.02, ge=0.0, allow_inf_nan=False)
    layer_norm_eps: float = Field(1e-12, gt=0.0, allow_inf_nan=False)
    pad_token_id: int | None = 0
    is_decoder: bool = False
    add_cross_attention: bool = False
    use_cache: bool = True
    tie_word_embeddings: bool = True
    classifier_dropout: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    # Families whose embeddings are narrower than the layers (ELECTRA, ALBERT): None = hidden_size.
    embedding_size: int | None = Field(None, gt=0)
    # Layer sharing (ALBERT): num_hidden_layers calls spread over num_hidden_groups groups of
    # inner_group_num distinct layers each; None = every layer its own (no sharing).
    num_hidden_groups: int | None = Field(None, gt=0)
    inner_group_num: int = Field(1, gt=0)
    components: Components = Field(default_factory=Components)

    @field_validator(
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "type_vocab_size", "pad_token_id", "hidden_dropout_prob",
        "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps", "classifier_dropout",
        "embedding_size", "num_hidden_groups", "inner_group_num",
        mode="before",
    )
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        # pydantic reads true as 1 (or 1.0): a size, count or rate written as a boolean is a mistake
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not the boolean {str(value).lower()}")
        return value

    @field_validator("pad_token_id", mode="before")
    @classmethod
    def _none_string(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.lower() == NONE else value

    @field_validator("hidden_act")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        if value not in ACTIVATIONS:
            raise ValueError(f"unknown activation {value!r}; use one of {', '.join(ACTIVATIONS)}")
        return value

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelSpec:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.add_cross_attention and not self.is_decoder:
            raise ValueError("add_cross_attention=True needs is_decoder=True (cross-attention is a decoder feature)")
        if self.num_hidden_groups is not None and self.num_hidden_groups > max(self.num_hidden_layers, 1):
            raise ValueError(
                f"num_hidden_groups ({self.num_hidden_groups}) must not exceed num_hidden_layers "
                f"({self.num_hidden_layers}): each group serves at least one layer"
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be in [0, vocab_size={self.vocab_size})")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def layer_schedule(self) -> tuple[int, ...]:
        """Which distinct layer module runs at each step, in order (one entry per layer call).

        Without sharing: ``0 .. L-1``. With ``num_hidden_groups`` G (ALBERT): step ``i`` of L uses
        group ``int(i / (L / G))``, which runs its ``inner_group_num`` layers in turn, so there are
        ``G * inner_group_num`` modules and ``L * inner_group_num`` calls (transformers' order).
        """
        layers = self.num_hidden_layers
        if self.num_hidden_groups is None:
            return tuple(range(layers * self.inner_group_num))
        inner = self.inner_group_num
        per_group = layers / self.num_hidden_groups
        return tuple(int(i / per_group) * inner + k for i in range(layers) for k in range(inner))

    @property
    def num_layer_modules(self) -> int:
        """Distinct layer modules the trunk holds (``G * inner_group_num`` with sharing, else L)."""
        if self.num_hidden_groups is None:
            return self.num_hidden_layers * self.inner_group_num
        return self.num_hidden_groups * self.inner_group_num

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_toml(self) -> str:
        import tomli_w

        # TOML has no null: drop None values that are the defaults, write "none" for the others.
        data = self.to_dict()
        if data["pad_token_id"] is None:
            data["pad_token_id"] = NONE
        if data["components"]["pooler"] is None:
            data["components"]["pooler"] = NONE
        return tomli_w.dumps(_drop_none(data))

    def save(self, path: str | Path) -> None:
        """Write the spec as JSON, YAML or TOML by the file's suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        text = {".json": self.to_json, ".yaml": self.to_yaml, ".yml": self.to_yaml, ".toml": self.to_toml}.get(suffix)
        if text is None:
            raise SpecError(f"cannot write spec to {str(path)!r}: unknown suffix {suffix!r}; use .json, .yaml or .toml")
        path.write_text(text(), encoding="utf-8")

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str = "spec") -> ModelSpec:
        """Validate plain data; pydantic errors become one :class:`SpecError` with field paths."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, source)) from None

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        """Read a JSON, YAML or TOML spec file."""
        return cls.from_data(read_spec_file(path), source=str(path))

    # -- HF config.json ---------------------------------------------------------------
    def to_hf_config(self) -> dict[str, Any]:
        """The ``config.json`` transformers' BertConfig reads (component choices are not HF's business)."""
        data = self.to_dict()
        data.pop("components")
        data.pop("name")
        for key in ("embedding_size", "num_hidden_groups"):  # BertConfig has neither; families that do map them
            if data.get(key) is None:
                data.pop(key)
        if data.get("inner_group_num") == 1 and data.get("num_hidden_groups") is None:
            data.pop("inner_group_num")
        return data

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any], **fields: Any) -> ModelSpec:
        """Map a HF ``config.json`` dict to a spec; unknown HF keys (legacy, generation) are ignored.

        Raises:
            SpecError: a config BertModel cannot express (e.g. relative position embeddings).
        """
        pet = config.get("position_embedding_type", "absolute")
        if pet not in (None, "absolute"):
            raise SpecError(
                f"config.json has position_embedding_type={pet!r}; bertzoo (like transformers 5) "
                "implements absolute positions only, so this checkpoint cannot load exactly"
            )
        known = set(cls.model_fields) - {"components", "name"}
        data = {k: v for k, v in config.items() if k in known}
        data.update(fields)
        return cls.from_data(data, source="config.json")


# Activation names accepted in hidden_act (HF's ACT2FN names that BERT checkpoints use). Names only:
# the functions are bertzoo.plugins.activations.ACT2FN (a plugin; the spec imports no torch), and a
# test checks that its keys are exactly these.
ACTIVATIONS: tuple[str, ...] = (
    "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu", "relu", "silu", "swish", "tanh",
    "gelu_python", "mish", "linear",
)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _parse_error(exc: Exception) -> str:
    """A parser's error as one line: YAML's spans several (problem, context, a drawing of the spot)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        context = getattr(exc, "context", None)
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")
    return " ".join(str(exc).split())


def read_spec_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} does not exist; give a preset name or an existing .yaml/.json/.toml file")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise SpecError(f"spec file {str(path)!r} has unknown suffix {suffix!r}; use .json, .yaml/.yml or .toml")
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec file {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except (json.JSONDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"spec file {str(path)!r} is not valid {suffix[1:].upper()}: {_parse_error(exc)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {str(path)!r} must hold a mapping at top level, not {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, source: str, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(err["loc"]))
        lines.append(f"{loc or '<root>'}: {err['msg']}")
    return f"invalid {source}: " + "; ".join(lines)


# -- second pass: component names and options --------------------------------------------------

def validate_components(spec: ModelSpec, registry: Any | None = None) -> ModelSpec:
    """Check every component name exists and validate its options against its options model.

    Returns a copy whose options are the validated, defaulted values as JSON data (so the spec
    still round-trips; a component that needs typed values, e.g. ``dict[int, str]`` keys,
    validates them again with its options model). Errors carry the path
    ``components.<kind>.options.<field>``.
    """
    if registry is None:
        from bertzoo.discovery import get_registry

        registry = get_registry()
    spec = _apply_family(spec, registry)
    updated: dict[str, Any] = {}
    for kind in COMPONENT_KINDS:
        comp: ComponentSpec | None = getattr(spec.components, kind)
        if comp is None:
            continue
        if kind == "attention" and comp.name == "auto":
            if comp.options:
                raise SpecError(
                    f"components.attention.options: attention 'auto' takes no options, got "
                    f"{', '.join(sorted(comp.options))}; name the implementation (e.g. attention='eager') "
                    "to pass it options"
                )
            continue
        try:
            record = registry.get(kind, comp.name)
        except ComponentNotFoundError as exc:
            raise SpecError(f"components.{kind}.name: {exc}") from None
        model = record.options_model()
        if model is None:
            if comp.options:
                raise SpecError(
                    f"components.{kind}.options: {record.full_name} takes no options, got "
                    f"{', '.join(sorted(comp.options))}"
                )
            continue
        if model.model_config.get("extra", "ignore") == "ignore":
            # pydantic's default drops unknown keys silently; a misspelt option must not vanish
            unknown = sorted(set(comp.options) - set(model.model_fields))
            if unknown:
                raise SpecError(
                    f"invalid spec: components.{kind}.options.{unknown[0]}: {record.full_name} has no option "
                    f"{unknown[0]!r}; its options are {', '.join(sorted(model.model_fields)) or 'none'}"
                )
        try:
            validated = model.model_validate(comp.options)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, "spec", prefix=f"components.{kind}.options")) from None
        updated[kind] = ComponentSpec(name=comp.name, options=validated.model_dump(mode="json", exclude_unset=False))
    if not updated:
        return spec
    components = spec.components.model_copy(update=updated)
    return spec.model_copy(update={"components": components})


def _apply_family(spec: ModelSpec, registry: Any) -> ModelSpec:
    """The family's default components for kinds the spec leaves unset, and its variant of the head.

    Raises:
        SpecError: an unregistered ``model_type``, or a head the family does not have.
    """
    from bertzoo.family import get_family, head_for_family

    family = get_family(spec.model_type, registry)
    comps = spec.components
    update: dict[str, Any] = {}
    for kind, name in family.components.items():
        if kind in ("embedding", "layer", "pooler") and kind not in comps.model_fields_set:
            update[kind] = None if name is None else ComponentSpec(name=name)
    if comps.head is not None:
        head = head_for_family(comps.head.name, spec.model_type, registry)
        if head != comps.head.name:
            update["head"] = ComponentSpec(name=head, options=comps.head.options)
    if not update:
        return spec
    return spec.model_copy(update={"components": comps.model_copy(update=update)})


OverrideTarget = Literal["field", "component", "option"]


def apply_overrides(spec: ModelSpec, overrides: Mapping[str, Any], registry: Any | None = None) -> ModelSpec:
    """Apply call-site overrides (they win over the spec); ``None`` values are dropped (timm).

    Keys may be: a spec field (``num_hidden_layers=2``); a component kind with a name or a
    ``{name, options}`` mapping (``attention="sdpa"``); a dotted path
    (``components.head.options.num_labels=3``); or a bare option name, given to the one
    chosen component whose options model declares it (``num_labels=3``).
    """
    data = spec.to_dict()
    pending_options: dict[str, Any] = {}
    # Component choices first, so a dotted option override given in the same call lands on the
    # newly chosen component instead of being replaced by it.
    ordered = sorted(overrides.items(), key=lambda item: item[0] not in COMPONENT_KINDS)
    for key, value in ordered:
        if value is None:
            continue
        if "." in key:
            _set_path(data, key.split("."), value)
        elif key in COMPONENT_KINDS:
            if isinstance(value, str):
                value = None if value.lower() == NONE else {"name": value}
            elif isinstance(value, Mapping):
                value = dict(value)
            data["components"][key] = value
        elif key in ModelSpec.model_fields:
            data[key] = value
        else:
            pending_options[key] = value
    if pending_options:
        _route_options(data, pending_options, registry)
    updated = ModelSpec.from_data(data, source="spec with overrides")
    # The round trip writes every component out; those neither the spec nor an override chose
    # stay unset, so the family's defaults still apply to them (validate_components).
    touched = {k for k in overrides if k in COMPONENT_KINDS}
    touched |= {k.split(".")[1] for k in overrides if k.startswith("components.") and k.count(".") >= 1}
    touched |= {kind for kind in COMPONENT_KINDS
                if (data["components"].get(kind) or {}) != (spec.components.model_dump(mode="json").get(kind) or {})}
    unset = {"embedding", "layer", "pooler"} - set(spec.components.model_fields_set) - touched
    updated.components.__pydantic_fields_set__.difference_update(unset)
    return updated


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> None:
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict):
            raise SpecError(f"override {'.'.join(parts)!r}: {'.'.join(parts[:i])} is not a mapping")
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    if not isinstance(node, dict):
        raise SpecError(f"override {'.'.join(parts)!r}: {'.'.join(parts[:-1])} is not a mapping")
    node[parts[-1]] = value


def _route_options(data: dict[str, Any], options: dict[str, Any], registry: Any | None) -> None:
    if registry is None:
        from bertzoo.discovery import get_registry

        registry = get_registry()
    for key, value in options.items():
        owners = []
        for kind in COMPONENT_KINDS:
            comp = data["components"].get(kind)
            if not comp or (kind == "attention" and comp.get("name") == "auto"):
                continue
            try:
                model = registry.get(kind, comp["name"]).options_model()
            except ComponentNotFoundError as exc:
                raise SpecError(f"components.{kind}.name: {exc}") from None
            if model is not None and key in model.model_fields:
                owners.append(kind)
        if len(owners) > 1:
            raise SpecError(
                f"ambiguous override {key!r}: it is an option of several chosen components "
                f"({', '.join(owners)}); write components.<kind>.options.{key}, e.g. "
                f"components.{owners[0]}.options.{key}"
            )
        if not owners:
            fields = ", ".join(sorted(set(ModelSpec.model_fields) - {"components"}))
            close = difflib.get_close_matches(key, list(ModelSpec.model_fields), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SpecError(
                f"unknown override {key!r}: it is not a spec field and no chosen component takes it as an "
                f"option; {hint}spec fields are {fields}; for a component option write "
                f"components.<kind>.options.{key}"
            )
        data["components"][owners[0]].setdefault("options", {})[key] = value
