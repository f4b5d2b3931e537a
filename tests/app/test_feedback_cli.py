"""``textgym feedback ...`` end to end (through textgym's own CLI entry point)."""

import json
import re

import pytest

pytest.importorskip("fastapi")

from feedback_helpers import ITEMS  # noqa: E402
from textgym.app.feedback.db import Project  # noqa: E402
from textgym.app.feedback.serve import bind_warning, is_loopback  # noqa: E402
from textgym.app.cli import main  # noqa: E402


@pytest.fixture()
def rows_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ITEMS * 4))  # 12 items
    return path


def test_new_add_annotator_simulate_status_export(tmp_path, rows_file, capsys):
    db = tmp_path / "fb.db"
    assert main(["feedback", "new", str(db), "--from-jsonl", str(rows_file), "--judgments-per-item", "3"]) == 0
    out = capsys.readouterr().out
    assert "12 items, 3 judgments per item" in out
    admin_token = re.search(r"/login\?token=(\S+)", out).group(1)
    assert Project(db).authenticate(admin_token).role == "admin"
    assert main(["feedback", "add-annotator", str(db), "dana", "--url", "http://127.0.0.1:9999"]) == 0
    link = capsys.readouterr().out
    assert "http://127.0.0.1:9999/login?token=" in link
    assert Project(db).authenticate(link.strip().rsplit("=", 1)[1]).name == "dana"
    rc = main(["feedback", "simulate", str(db), "--annotators", "3", "--rater", "length", "--noise", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "stored 36 judgments" in out, out
    assert "sim-1: 12" in out and "rankings pairwise 1.000" in out  # noise 0: the annotators agree
    assert main(["feedback", "status", str(db), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"]["items_complete"] == 12 and status["agreement"]["rating_alpha_ordinal"] == 1.0
    pairs, sft = tmp_path / "out" / "pairs.jsonl", tmp_path / "out" / "sft.jsonl"
    assert main(["feedback", "export", str(db), "--pairs", str(pairs), "--sft", str(sft)]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(x) for x in pairs.read_text().splitlines()]
    # the `length` reward counts words: K = 2 items give 1 pair each; the three one-word colours tie
    # (one ranking group, equal ratings: no pair); 4 copies of the 3 items
    assert len(rows) == 4 * (1 + 0 + 1) and f"{len(rows)} preference pairs" in out
    assert all(r["votes_for"] == 3 and r["votes_against"] == 0 for r in rows)
    assert all(len(r["chosen"].split()) > len(r["rejected"].split()) for r in rows)  # more words win
    assert sft.read_text() == ""


@pytest.mark.parametrize("argv, message", [
    (["new", "{db}", "--from-jsonl", "{rows}", "--model", "tiny-gpt2"], "exactly one of --model"),
    (["new", "{db}", "--from-jsonl", "missing.jsonl"], "no such file"),
    (["new", "{db}", "--model", "tiny-gpt2", "--env", "textgym/Nope-v0"], "not a registered env id"),
    (["new", "{db}", "--model", "tiny-gpt2", "--env", "textgym/IMDB-v0", "--k", "1"], "--k >= 2"),
    (["new", "{db}", "--run", "{tmp}", "--env", "textgym/IMDB-v0"], "is not a run folder"),
    (["status", "{tmp}/none.db"], "no feedback project"),
    (["export", "{tmp}/none.db", "--pairs", "p.jsonl"], "no feedback project"),
    (["simulate", "{tmp}/none.db"], "no feedback project"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, rows_file, capsys, argv, message):
    fmt = {"db": str(tmp_path / "new.db"), "rows": str(rows_file), "tmp": str(tmp_path)}
    assert main(["feedback", *[a.format(**fmt) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "new.db").exists()


def test_errors_on_an_existing_project(tmp_path, rows_file, capsys):
    db = tmp_path / "fb.db"
    assert main(["feedback", "new", str(db), "--from-jsonl", str(rows_file)]) == 0
    assert main(["feedback", "new", str(db), "--from-jsonl", str(rows_file)]) == 2
    assert main(["feedback", "add-annotator", str(db), "admin"]) == 2
    assert main(["feedback", "add-annotator", str(db), "no spaces"]) == 2
    assert main(["feedback", "simulate", str(db), "--rater", "no-such-reward"]) == 2
    assert main(["feedback", "export", str(db)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "use 1-64 letters" in err and "--rater 'no-such-reward'" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "completions": ["a", "b"]}\nnot json\n')
    assert main(["feedback", "new", str(tmp_path / "b.db"), "--from-jsonl", str(bad)]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err


def test_binding_beyond_localhost_warns():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert bind_warning("127.0.0.1") is None
    assert "reachable from other machines" in bind_warning("0.0.0.0")


@pytest.mark.slow
def test_new_samples_completions_from_a_model(tmp_path, capsys):
    db = tmp_path / "fb.db"
    assert main(["feedback", "new", str(db), "--model", "tiny-llama", "--env", "textgym/IMDB-v0",
                 "--prompts", "3", "--k", "2", "--max-new-tokens", "4"]) == 0
    items = Project(db).items()
    assert len(items) == 3 and all(len(it.completions) == 2 for it in items)
    assert len({it.prompt for it in items}) == 3
