"""Checkpoint formats: HuggingFace folders in and out, below the factory.

| module | holds |
|---|---|
| ``layout`` | file names, key prefixes, legacy renames, architecture names |
| ``hub`` | a folder or hub id → a local folder (cache first, ``HF_HUB_OFFLINE`` honoured) |
| ``default_model`` | all-MiniLM-L6-v2 with no set-up, and ``model=`` resolution |
| ``weights`` | which weight files (single, shards contained in the folder, pickle opt-in), reading them |
| ``keys`` | file keys → model keys, tied aliases, dtype and finiteness checks, copying into a model |
| ``meta`` | loading into a model built on the meta device |
| ``report`` | :class:`LoadReport` |
| ``hf_config`` | supported families; config.json ↔ head, head options, dtype; the config.json a save writes |
| ``sentence_transformers`` | ``modules.json`` and pooling configs, read and written |
| ``save`` | :func:`save_pretrained` and :class:`PretrainedMixin` |
| ``model_card`` | the README.md model card a save writes (spec, source, ``bertzoo verify`` figures) |
| ``push`` | ``push_to_hub``: a staged save uploaded through huggingface_hub |

``from_pretrained`` needs the factory, so it lives above it, in :mod:`bertzoo.pretrained`.

Head contract (heads live in ``bertzoo.heads``; see docs/architecture.md "Checkpoints"): the
trunk sits at ``.bert``; class attributes ``uses_pooler`` and ``classifier_keys``; registry
metadata ``hf_architecture``; optional classmethods ``options_from_hf_config(config)``,
``hf_config_from_options(options)`` and ``options_from_sentence_transformers(info)``.

Names load on first use (PEP 562), so ``bertzoo.checkpoint.hub`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertzoo._lazy import lazy_names

# submodule -> its public names (each module's __all__), loaded on first use
_EXPORTS: dict[str, tuple[str, ...]] = {
    "layout": ("BASE_PREFIX", "CONFIG_NAME", "CORE_ROOTS", "LEGACY_RENAMES", "PICKLE_INDEX", "PICKLE_WEIGHTS",
               "SAFE_INDEX", "SAFE_WEIGHTS", "SENTENCE_TRANSFORMERS_ARCHITECTURE", "STALE_BUFFERS",
               "TRUNK_ARCHITECTURE", "TRUNK_ROOTS", "contained_path", "read_json", "short_list", "strip_base"),
    "report": ("LoadReport",),
    "weights": ("SAFE_TORCH_LOAD", "check_torch_for_pickle", "read_state_dict", "scan_non_finite",
                "weight_files"),
    "keys": ("alias_groups", "all_finite", "file_key", "is_head_model", "load_into", "normalize_keys", "plan_load"),
    "meta": ("ModuleSet", "assign_state", "no_torch_init"),
    "hf_config": ("bertzoo_section", "checkpoint_dtype", "choose_head", "classifier_keys", "family_of",
                  "head_options_from_config", "spec_from_config",
                  "head_record_for_architecture", "head_record_of", "hf_config_for", "read_hf_config",
                  "saved_components", "spec_of", "supported_model_types"),
    "sentence_transformers": ("MODEL_CONFIG_FILE", "NORMALIZE_FOLDER", "POOLING_FOLDER", "POOLING_MODE_KEYS",
                              "SENTENCE_BERT_CONFIG_FILE", "SIMILARITY_FN_NAMES", "SentenceTransformerInfo",
                              "config_sentence_transformers", "pooling_config", "pooling_modes_of",
                              "read_model_config", "read_sentence_transformers_info", "sentence_bert_config",
                              "write_sentence_transformers_files"),
    "model_card": ("CARD_FILE", "CARD_MARKER", "is_bertzoo_card", "parity_section", "record_verification",
                   "render_model_card", "report_dict"),
    "push": ("push_folder", "push_to_hub"),
    "hub": ("HUB_PATTERNS", "PICKLE_PATTERNS", "has_checkpoint", "hub_cache_dir", "is_offline", "looks_like_hub_id",
            "resolve_model_dir"),
    "default_model": ("DEFAULT_ALIASES", "DEFAULT_MODEL", "DEFAULT_PACKAGE", "default_model_dir", "resolve_model"),
    "save": ("PretrainedMixin", "parse_size", "save_pretrained", "state_dict_for_save", "write_weights"),
}
_LAZY = {name: f"{__name__}.{module}" for module, names in _EXPORTS.items() for name in names}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover - what the names are, for type checkers
    from bertzoo.checkpoint.default_model import (  # noqa: F401
        DEFAULT_ALIASES,
        DEFAULT_MODEL,
        DEFAULT_PACKAGE,
        default_model_dir,
        resolve_model,
    )
    from bertzoo.checkpoint.hf_config import (  # noqa: F401
        bertzoo_section,
        checkpoint_dtype,
        choose_head,
        classifier_keys,
        family_of,
        head_options_from_config,
        head_record_for_architecture,
        head_record_of,
        hf_config_for,
        read_hf_config,
        saved_components,
        spec_from_config,
        spec_of,
        supported_model_types,
    )
    from bertzoo.checkpoint.hub import (  # noqa: F401
        HUB_PATTERNS,
        PICKLE_PATTERNS,
        has_checkpoint,
        hub_cache_dir,
        is_offline,
        looks_like_hub_id,
        resolve_model_dir,
    )
    from bertzoo.checkpoint.keys import (  # noqa: F401
        alias_groups,
        all_finite,
        file_key,
        is_head_model,
        load_into,
        normalize_keys,
        plan_load,
    )
    from bertzoo.checkpoint.layout import (  # noqa: F401
        BASE_PREFIX,
        CONFIG_NAME,
        CORE_ROOTS,
        LEGACY_RENAMES,
        PICKLE_INDEX,
        PICKLE_WEIGHTS,
        SAFE_INDEX,
        SAFE_WEIGHTS,
        SENTENCE_TRANSFORMERS_ARCHITECTURE,
        STALE_BUFFERS,
        TRUNK_ARCHITECTURE,
        TRUNK_ROOTS,
        contained_path,
        read_json,
        short_list,
        strip_base,
    )
    from bertzoo.checkpoint.meta import ModuleSet, assign_state, no_torch_init  # noqa: F401
    from bertzoo.checkpoint.model_card import (  # noqa: F401
        CARD_FILE,
        CARD_MARKER,
        is_bertzoo_card,
        parity_section,
        record_verification,
        render_model_card,
        report_dict,
    )
    from bertzoo.checkpoint.push import (  # noqa: F401
        push_folder,
        push_to_hub,
    )
    from bertzoo.checkpoint.report import LoadReport  # noqa: F401
    from bertzoo.checkpoint.save import (  # noqa: F401
        PretrainedMixin,
        parse_size,
        save_pretrained,
        state_dict_for_save,
        write_weights,
    )
    from bertzoo.checkpoint.sentence_transformers import (  # noqa: F401
        MODEL_CONFIG_FILE,
        NORMALIZE_FOLDER,
        POOLING_FOLDER,
        POOLING_MODE_KEYS,
        SENTENCE_BERT_CONFIG_FILE,
        SIMILARITY_FN_NAMES,
        SentenceTransformerInfo,
        config_sentence_transformers,
        pooling_config,
        pooling_modes_of,
        read_model_config,
        read_sentence_transformers_info,
        sentence_bert_config,
        write_sentence_transformers_files,
    )
    from bertzoo.checkpoint.weights import (  # noqa: F401
        SAFE_TORCH_LOAD,
        check_torch_for_pickle,
        read_state_dict,
        scan_non_finite,
        weight_files,
    )
