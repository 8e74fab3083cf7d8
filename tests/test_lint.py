"""The code stays clean by the linter configured in pyproject.toml (pycodestyle, pyflakes,
import sorting, bugbear, pyupgrade, simplify; lines of at most 120 characters)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, input=stdin, capture_output=True,
                          text=True)


def test_the_tree_is_clean():
    done = ruff("check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_configuration_catches_unsorted_imports_and_long_lines():
    """The check above is not one that cannot fail: the project's configuration flags what it names."""
    source = "import sys\nimport os\n\nprint(os.sep, sys.argv, '" + "x" * 120 + "')\n"
    done = ruff("check", "--no-cache", "--stdin-filename", "repnext_bench/example.py", "-", stdin=source)
    assert done.returncode == 1
    assert "I001" in done.stdout and "E501" in done.stdout
