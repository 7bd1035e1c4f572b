"""``push_to_hub``: save a model into a staging folder and upload it through huggingface_hub.

The upload is ``HfApi.create_repo(exist_ok=True)`` then ``HfApi.upload_folder`` of the staged save
(one commit). The staged folder is a complete save (:func:`bertzoo.checkpoint.save.save_pretrained`:
weights, tokenizer, sentence-transformers files, model card), so what lands on the hub loads
unchanged in transformers and sentence-transformers. ``endpoint=`` (or ``HF_ENDPOINT``, read by
huggingface_hub at import) points it at another hub server; tests/core/test_complete_save.py runs
it against a loopback server that speaks the hub's upload endpoints.

This module calls the model's own ``save_pretrained`` and never imports the save module, so the
model's ``push_to_hub`` method can import it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bertzoo.errors import CheckpointError


def _hub_api(endpoint: str | None, token: str | bool | None) -> Any:
    try:
        from huggingface_hub import HfApi, constants
    except ImportError as err:  # a core dependency; only a broken environment lacks it
        raise CheckpointError("push_to_hub needs huggingface_hub: pip install huggingface_hub") from err
    if constants.is_offline_mode():
        raise CheckpointError("cannot push: HF_HUB_OFFLINE is set (huggingface_hub refuses every request); unset "
                              "it in the environment of this process to upload")
    return HfApi(endpoint=endpoint, token=token)


def push_folder(folder: str | os.PathLike[str], repo_id: str, *, token: str | bool | None = None,
                private: bool | None = None, revision: str | None = None, commit_message: str | None = None,
                create_pr: bool = False, endpoint: str | None = None) -> Any:
    """Upload a saved folder to the hub repo ``repo_id`` (created if missing) in one commit.

    Args:
        folder: a folder ``save_pretrained`` wrote.
        repo_id: ``"user/name"`` (or ``"name"`` under the token's user).
        token: a hub token; None = huggingface_hub's (``HF_TOKEN`` or the stored login).
        private: visibility of a repo this call creates.
        revision: branch to commit to (default ``main``).
        create_pr: open a pull request instead of committing to the branch.
        endpoint: the hub's URL; None = huggingface_hub's (``HF_ENDPOINT``).

    Returns:
        huggingface_hub's ``CommitInfo`` (``.commit_url``, ``.oid``, ``.pr_url``).

    Raises:
        CheckpointError: the folder is not a saved model, or HF_HUB_OFFLINE is set. huggingface_hub's
            own errors (authentication, network) are raised as they are.
    """
    source = Path(folder).expanduser()
    if not (source / "config.json").is_file():
        raise CheckpointError(f"{str(source)!r} holds no config.json: it is not a saved model; save it with "
                              "model.save_pretrained(folder) first")
    api = _hub_api(endpoint, token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return api.upload_folder(
        repo_id=repo_id, folder_path=str(source), repo_type="model", revision=revision, create_pr=create_pr,
        commit_message=commit_message or f"Upload {source.name or repo_id} with bertzoo",
    )


def push_to_hub(model: Any, repo_id: str, *, token: str | bool | None = None, private: bool | None = None,
                revision: str | None = None, commit_message: str | None = None, create_pr: bool = False,
                endpoint: str | None = None, **save_options: Any) -> Any:
    """Save ``model`` (a bertzoo model, or the path of a folder already saved) and upload it.

    A model is saved into a temporary folder with ``model.save_pretrained(tmp, **save_options)``
    (``tokenizer=``, ``prompts=``, ``verify_report=``, ``max_shard_size=``, ...), which is uploaded and
    deleted. To put the parity figures of the uploaded files in the card, verify a save and push
    that folder::

        model.save_pretrained("out")
        record_verification("out", bertzoo.verify.verify("out"))   # bertzoo.checkpoint.model_card
        push_to_hub("out", "me/my-model")

    See :func:`push_folder` for the other arguments and the return value.
    """
    options = {"token": token, "private": private, "revision": revision, "commit_message": commit_message,
               "create_pr": create_pr, "endpoint": endpoint}
    if isinstance(model, str | os.PathLike):
        if save_options:
            raise CheckpointError(f"save options {sorted(save_options)} apply when pushing a model, not the folder "
                                  f"{str(model)!r}, which is uploaded as it is; save it again with them first")
        return push_folder(model, repo_id, **options)  # type: ignore[arg-type]
    save = getattr(model, "save_pretrained", None)
    if not callable(save):
        raise CheckpointError(f"push_to_hub needs a bertzoo model or a saved folder, not {type(model).__name__}")
    with tempfile.TemporaryDirectory(prefix="bertzoo-push-") as staging:
        folder = Path(staging) / repo_id.rsplit("/", 1)[-1]
        save(folder, **save_options)
        return push_folder(folder, repo_id, **options)  # type: ignore[arg-type]


__all__ = ["push_folder", "push_to_hub"]
