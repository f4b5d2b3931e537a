"""The `feedback:` stage of `textgym train`: generate -> collect (simulated, or people) -> reward model -> RL, in one
config, with tiny models (tiny-char on TokenCount prompts; the `length` reward, words per completion, as the rater)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from textgym.app.cli import main  # noqa: E402
from textgym.app.config import ConfigError, load_config, parse_config  # noqa: E402
from textgym.app.feedback.db import Project  # noqa: E402
from train_run_helpers import run_train, tiny_ppo_config  # noqa: E402

RM_CONFIG = {"learning_rate": 0.003, "max_steps": 4, "batch_size": 4, "max_length": 32, "progress": False}


def loop_config(project: Path, simulate: bool = True) -> dict:
    fb = {"project": str(project), "generate": {"prompts": 6, "k": 2, "max_new_tokens": 6, "judgments_per_item": 2}}
    if simulate:
        fb["simulate"] = {"annotators": 2, "rater": "length", "noise": 0.0, "edit_rate": 0.5}
    return tiny_ppo_config(feedback=fb, reward_model={"model": "tiny-gpt2", "data": {"split": "all", "eval_split": None},
                                                      "config": dict(RM_CONFIG)})


def test_one_config_runs_the_whole_loop_with_simulated_annotators(tmp_path, capsys):
    db = tmp_path / "fb.db"
    code, run = run_train(tmp_path, loop_config(db), "loop")
    out = capsys.readouterr().out
    assert code == 0, out
    state = json.loads((run / "run_state.json").read_text())
    assert list(state["stages"]) == ["sft", "feedback", "preference", "reward_model", "eval_before", "rl",
                                     "eval_after", "report"]
    assert state["stages"]["feedback"] == "done" and state["stages"]["rl"] == "done" and state["status"] == "done"
    p = Project(db)
    c = p.counts()
    assert c["items"] == 6 and c["items_complete"] == 6 and c["judgments"] == 12
    assert sorted(p.per_annotator()) == ["sim-1", "sim-2"]
    assert all(len(it.completions) == 2 for it in p.items())
    fb = state["results"]["feedback"]
    assert fb["items"] == 6 and fb["judgments"] == 12 and fb["edits"] == sum(j["edit"] is not None for j in p.judgments())
    assert fb["edits"] >= 1  # edit rate 0.5 over 12 judgments
    # the reward model trained on the project's pairs (split all: every pair)
    assert state["results"]["reward_model"]["data/train_pairs"] == fb["pairs"] > 0
    assert (run / "reward_model" / "config.json").is_file()
    assert "[feedback] created" in out and "- feedback: `" in (run / "summary.md").read_text()
    # a resumed finished run redoes nothing: the project is neither regenerated nor judged again
    assert main(["train", "--resume", str(run)]) == 0
    assert Project(db).counts()["judgments"] == 12


def test_people_mode_stops_with_one_line_and_resumes_once_judged(tmp_path, capsys):
    db = tmp_path / "fb.db"
    code, run = run_train(tmp_path, loop_config(db, simulate=False), "people")
    out = capsys.readouterr().out
    assert code == 75
    line = [x for x in out.splitlines() if x.startswith("[feedback] waiting for people")]
    assert len(line) == 1, out
    assert (f"textgym feedback add-annotator {db} NAME" in line[0] and f"textgym feedback serve {db}" in line[0]
            and f"textgym train --resume {run.resolve()}" in line[0] and "0 of 6 items" in line[0])
    assert "admin login" in out  # printed once, when the project was created
    state = json.loads((run / "run_state.json").read_text())
    assert state["status"] == "waiting" and state["stages"]["feedback"] == "pending"
    assert state["stages"]["reward_model"] == "pending" and not (run / "reward_model").exists()
    texts = [c["text"] for it in Project(db).items() for c in it.completions]
    # still not judged: resuming stops again at the same place, without generating anew
    assert main(["train", "--resume", str(run)]) == 75
    # people judge (stand-ins through the same HTTP API), then the run continues
    assert main(["feedback", "add-annotator", str(db), "alice"]) == 0
    assert main(["feedback", "simulate", str(db), "--annotators", "2", "--rater", "length", "--noise", "0"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 items have their 2 judgments: continuing" in out
    state = json.loads((run / "run_state.json").read_text())
    assert state["status"] == "done" and all(v in ("done", "skipped") for v in state["stages"].values())
    assert [c["text"] for it in Project(db).items() for c in it.completions] == texts
    assert "feedback_generate" in state["results"]


def test_simulated_annotators_continue_their_own_queues_on_resume(tmp_path):
    from textgym.app.pipeline import Pipeline

    db = tmp_path / "fb.db"
    p = Project(db, create=True, judgments_per_item=2)
    p.add_items([{"prompt": f"count:{i}=", "completions": ["a", "a b"]} for i in range(4)])
    from textgym.app.feedback.judgments import parse_judgment

    sim1 = p.authenticate(p.add_annotator("sim-1")).id
    for it in p.items()[:2]:  # an earlier, interrupted collection: sim-1 judged 2 items
        p.submit(sim1, parse_judgment({"item_id": it.id, "idempotency_key": f"earlier-{it.id}", "vote": "right"}, it))
    raw = loop_config(db)
    for key in ("algo", "train", "reward_model"):
        raw.pop(key)
    raw["algorithm"] = "none"  # the feedback stage alone (and the evaluation)
    cfg = parse_config(raw)
    Pipeline(cfg, tmp_path / "run").run()
    c = Project(db).counts()
    assert c["judgments"] == 8 and c["items_complete"] == 4  # nothing judged twice, nothing left out
    assert Project(db).per_annotator() == {"sim-1": 4, "sim-2": 4}  # sim-1 kept its 2 and did 2 more


@pytest.mark.parametrize("change, key, message", [
    (lambda r: r["feedback"].pop("project"), "feedback.project", "give the project file"),
    (lambda r: r["feedback"]["simulate"].update(rater="no-such"), "feedback.simulate.rater", "registered reward"),
    (lambda r: r["feedback"]["simulate"].update(tasks=["rate", "dance"]), "feedback.simulate.tasks", "rate, rank"),
    (lambda r: r["feedback"]["simulate"].update(edit_rate=2), "feedback.simulate.edit_rate", "probability"),
    (lambda r: r["feedback"]["generate"].update(k=1), "feedback.generate.k", ">= 2"),
    (lambda r: r.update(sft={"data": {"feedback": r["feedback"]["project"]}}), "sft.data.feedback",
     "runs before the feedback stage"),
])
def test_bad_feedback_sections_are_config_errors(tmp_path, change, key, message):
    raw = copy.deepcopy(loop_config(tmp_path / "fb.db"))
    change(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.key == key and message in str(err.value), str(err.value)


def test_the_reward_model_reads_the_loop_project_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = loop_config(Path("rel") / "fb.db")
    cfg = parse_config(raw)  # the project does not exist yet: the stage creates it
    assert cfg.feedback.project == str(tmp_path / "rel" / "fb.db")
    assert cfg.reward_model.data.feedback == cfg.feedback.project
    other = {**raw, "reward_model": {**raw["reward_model"], "data": {"feedback": "nowhere.db"}}}
    with pytest.raises(ConfigError, match="no such feedback project"):
        parse_config(other)


def test_the_example_config_is_the_one_command_loop():
    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "configs" / "rlhf_human.yaml")
    assert cfg.feedback is not None and cfg.feedback.simulate is not None
    assert cfg.reward_model.data.feedback == cfg.feedback.project and cfg.algorithm == "ppo"
