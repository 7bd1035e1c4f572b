"""Bridges to other engines. Each module imports its engine only when used, so ``import bertzoo`` stays light.

- :mod:`bertzoo.integrations.ray`: the main job on Ray Data (``embed``, ``classify``, ``rerank``
  over a Ray Dataset: one loaded pipeline per actor, CPU or GPU actors).
- :mod:`bertzoo.integrations.ray_corpus`: ``bertzoo embed --engine ray``, a shard-folder job whose
  folder and manifest are the local engine's (:mod:`bertzoo.corpus`).
- :mod:`bertzoo.integrations.langchain`: ``BertzooEmbeddings``, a LangChain ``Embeddings``.
- :mod:`bertzoo.integrations.llamaindex`: ``BertzooEmbedding``, a LlamaIndex ``BaseEmbedding``.

Install the extra first: ``pip install 'bertzoo[ray]'`` (``[langchain]``, ``[llamaindex]``).
"""

from __future__ import annotations
