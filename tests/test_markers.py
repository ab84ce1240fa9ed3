"""The fast tier cannot silently grow a server test: the conftest refuses unmarked ones."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import starts_a_server

pytest_plugins = ["pytester"]


def test_server_commands_are_recognised() -> None:
    assert starts_a_server([f"{sys.prefix}/bin/moto_server", "-H", "127.0.0.1", "-p", "9"])
    assert starts_a_server([sys.executable, "-m", "govdeploy.stack.s3_emulator", "-p", "9"])
    assert starts_a_server(
        ["/usr/bin/setpriv", "--reuid=postgres", "--", "/usr/lib/postgresql/15/bin/postgres"]
    )
    assert starts_a_server([sys.executable, "-m", "mlflow", "server", "--port", "5"])
    assert starts_a_server([sys.executable, "-m", "govdeploy.serving.gateway.run", "--port", "9"])
    assert starts_a_server([sys.executable, "-m", "uvicorn", "govdeploy.serving.gateway.main:app"])
    assert starts_a_server("prefect server start")
    assert not starts_a_server(["sleep", "30"])
    assert not starts_a_server([sys.executable, "-m", "govdeploy", "policy", "check"])


def _copy_conftest(pytester: pytest.Pytester) -> None:
    tests = pytester.path / "tests"
    tests.mkdir()
    (tests / "__init__.py").write_text("")
    shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")


def test_an_unmarked_test_that_uses_the_stack_is_a_collection_error(pytester: pytest.Pytester) -> None:
    _copy_conftest(pytester)
    (pytester.path / "tests" / "test_x.py").write_text("def test_uses(stack):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "not integration", "tests")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*tests/test_x.py::test_uses*mark them so they stay out of the fast tier*"])


def test_an_unmarked_test_that_starts_a_server_fails(pytester: pytest.Pytester) -> None:
    _copy_conftest(pytester)
    (pytester.path / "tests" / "test_y.py").write_text(
        "import subprocess, sys, pytest\n"
        "def test_starts():\n"
        "    subprocess.Popen([sys.executable, '-m', 'mlflow', 'server', '--port', '1'])\n"
        "@pytest.mark.integration\n"
        "def test_marked():\n"
        "    subprocess.run(['true'], check=True)\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*test_starts starts a server*without @pytest.mark.integration*"])
