"""The CLI end to end: commands, JSON output, clean errors without tracebacks, fast start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plinth.cli.main import main


@pytest.fixture
def home(tmp_path: Path) -> str:
    return str(tmp_path / "ws")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_is_idempotent(capsys, home):
    assert run_cli(capsys, "init", "--home", home)[0] == 0
    code, out, _ = run_cli(capsys, "init", "--home", home)
    assert code == 0
    assert "Workspace ready" in out
    assert (Path(home) / "catalog.db").exists()


def test_info_shows_each_setting_and_its_origin(capsys, home, monkeypatch):
    monkeypatch.setenv("PLINTH_USER", "ada")
    code, out, _ = run_cli(capsys, "info", "--home", home, "--json")
    assert code == 0
    data = json.loads(out)["settings"]
    assert data["home"] == {"value": str(Path(home).resolve()), "source": "argument"}
    assert data["user"] == {"value": "ada", "source": "env PLINTH_USER"}
    assert data["database_url"]["source"] == "default"
    assert data["storage_url"]["value"].endswith("storage")
    code, out, _ = run_cli(capsys, "info", "--home", home)
    assert "PLINTH_DATABASE_URL" in out and "env PLINTH_USER" in out


def test_ingest_tables_show_history(capsys, home, tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("k,v,at\n1,x,2024-01-01T00:00:00Z\n2,y,2024-01-02T00:00:00Z\n")
    code, out, err = run_cli(
        capsys, "ingest", str(csv), "--table", "t", "--timestamp", "at", "--home", home
    )
    assert code == 0, err
    assert "t@0 append: 2 rows in" in out
    code, out, _ = run_cli(
        capsys,
        "ingest",
        str(csv),
        "--table",
        "t",
        "--mode",
        "upsert",
        "--key",
        "k",
        "--home",
        home,
    )
    assert code == 0
    code, out, _ = run_cli(capsys, "tables", "--home", home, "--json")
    listed = json.loads(out)
    assert [(t["name"], t["latest"]["version"], t["latest"]["row_count"]) for t in listed] == [
        ("t", 1, 2)
    ]
    code, out, _ = run_cli(capsys, "table", "show", "t", "--home", home)
    assert code == 0 and "timestamp: at" in out and "key: k" in out
    code, out, _ = run_cli(capsys, "table", "show", "t", "--version", "0", "--home", home)
    assert "version 0: 2 rows" in out
    code, out, _ = run_cli(capsys, "table", "history", "t", "--home", home, "--json")
    assert [v["operation"] for v in json.loads(out)] == ["append", "upsert"]


def test_type_option_and_sql_source(capsys, home, tmp_path):
    import sqlite3

    db = tmp_path / "s.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table x (a int)")
        conn.executemany("insert into x values (?)", [(i,) for i in range(5)])
    code, _, err = run_cli(
        capsys,
        "ingest",
        "select a from x",
        "--table",
        "x",
        "--sql-url",
        f"sqlite:///{db}",
        "--type",
        "a=float64",
        "--home",
        home,
    )
    assert code == 0, err
    code, out, _ = run_cli(capsys, "table", "show", "x", "--home", home, "--json")
    assert json.loads(out)["version"]["schema"] == [
        {"name": "a", "type": "double", "nullable": True}
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "/no/such/file.csv", "--table", "t"], "does not exist"),
        (["table", "show", "missing"], "Table 'missing' does not exist"),
        (["ingest", "x.csv", "--table", "t", "--type", "broken"], "--type expects COLUMN=TYPE"),
        (["ingest", "x.csv", "--table", "bad name"], "not a valid table name"),
    ],
)
def test_user_errors_exit_1_without_traceback(capsys, home, args, message):
    code, out, err = run_cli(capsys, *args, "--home", home)
    assert code == 1
    assert message in err
    assert "Traceback" not in err + out


def test_unknown_version_and_malformed_url(capsys, home, tmp_path, monkeypatch):
    csv = tmp_path / "a.csv"
    csv.write_text("k\n1\n")
    run_cli(capsys, "ingest", str(csv), "--table", "t", "--home", home)
    code, _, err = run_cli(capsys, "table", "show", "t", "--version", "9", "--home", home)
    assert code == 1 and "no version 9" in err
    monkeypatch.setenv("PLINTH_DATABASE_URL", "mysql://nope")
    code, _, err = run_cli(capsys, "tables", "--home", home)
    assert code == 1 and "PLINTH_DATABASE_URL" in err


def test_console_script_exits_nonzero_without_traceback(tmp_path):
    plinth = Path(sys.executable).parent / "plinth"
    result = subprocess.run(
        [str(plinth), "table", "history", "ghost", "--home", str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Error:" in result.stderr and "Traceback" not in result.stderr


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from plinth.cli.main import main\n"
        "main(['--help'])\n"
        "heavy = [m for m in ('pandas', 'pyarrow', 'deltalake', 'sqlalchemy', 'torch', 'ray',"
        " 'duckdb', 'polars', 'pydantic') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="
