"""The pipeline's ``feedback`` stage: the RLHF loop's middle step inside ``textgym train``.

1. **generate** - when ``feedback.project`` does not exist, sample ``k`` completions for
   ``prompts`` prompts of the training env from the starting policy (the SFT model if the run
   has one) and create the project (the code of ``textgym feedback new``;
   :func:`textgym.app.feedback.generate.create_project` renames it into place only once complete).
2. **collect** - with ``feedback.simulate``: simulated annotators ``sim-1`` ... ``sim-N`` judge the
   queue through the HTTP API of the app served in a thread on a free local port (the code of
   ``textgym feedback simulate``; a resumed run reissues their tokens, so they continue their own
   queues).  Without it, people judge: the stage checks that ``people.min_complete`` of the items
   have all their judgments, else it stops the run with :class:`WaitingForFeedback`, whose one-line
   message says how to serve the project, which links to hand out and how to resume.
3. The stage records the project's counts, agreement and pairs in ``run_state.json``
   (``results.feedback``) and is marked done; the ``preference`` / ``reward_model`` stages then
   read the project as any ``data: {feedback: ...}`` source.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textgym.app.run_state import RunFolderError

__all__ = ["FeedbackStage", "WaitingForFeedback", "EXIT_WAITING"]

#: ``textgym train``'s exit status when the run stopped for people's judgments (sysexits' EX_TEMPFAIL: retry later).
EXIT_WAITING = 75


class WaitingForFeedback(Exception):
    """The run stopped until people have judged the project; ``str()`` is the one line telling them how."""


class FeedbackStage:
    """Mixin of :class:`textgym.app.pipeline.Pipeline`: the ``feedback`` stage."""

    def stage_feedback(self) -> None:
        """Generate the project if it does not exist, collect its judgments, record them (module docstring)."""
        from textgym.app.feedback.db import Project, ProjectError

        f = self.cfg.feedback
        path = Path(f.project)
        t0 = time.perf_counter()
        if not path.exists():
            self._generate_project(path)
        try:
            project = Project(path)
        except ProjectError as exc:
            raise RunFolderError(f"feedback.project: {exc}") from None
        try:
            if f.simulate is not None:
                self._simulate(project)
            else:
                self._wait_for_people(project)
            summary = self._feedback_summary(project)
        finally:
            project.close()
        summary["time_s"] = time.perf_counter() - t0
        self.state["results"]["feedback"] = summary
        self._mark("feedback")

    # ------------------------------------------------------------------ 1. generate
    def _generate_project(self, path: Path) -> None:
        from textgym.app.feedback.generate import create_project, sample_items

        f, g = self.cfg.feedback, self.cfg.feedback.generate
        model = g.model or self.sft_or_base_model
        kwargs = {k: v for k, v in self.cfg.env.kwargs.items() if k not in ("reward", "reward_model", "split",
                                                                             "samples")}
        if g.max_new_tokens is not None:
            kwargs["max_new_tokens"] = g.max_new_tokens
        self._say(f"[feedback] sampling {g.k} completions for each of {g.prompts} prompts of {self.cfg.env.id} "
                  f"({g.split}) from {model} ...")
        t0 = time.perf_counter()
        rows = sample_items(model, self.cfg.env.id, prompts=g.prompts, k=g.k, split=g.split,
                            seed=self.cfg.seed if g.seed is None else g.seed, temperature=g.temperature,
                            env_kwargs=kwargs)
        n, token = create_project(path, rows, origin=str(model),
                                  judgments_per_item=g.judgments_per_item)
        self.state["results"]["feedback_generate"] = {"items": float(n), "time_s": time.perf_counter() - t0}
        self._save_state()
        self._say(f"[feedback] created {path}: {n} items, {g.judgments_per_item} judgments per item, in "
                  f"{time.perf_counter() - t0:.0f} s")
        if f.simulate is None:
            self._say(f"[feedback] admin login (status, export; keep it secret): "
                      f"{f.people.url.rstrip('/')}/login?token={token}")

    # ------------------------------------------------------------------ 2. collect
    def _simulate(self, project: Any) -> None:
        from textgym.app.feedback.db import ProjectError
        from textgym.app.feedback.serve import BackgroundServer
        from textgym.app.feedback.simulate import make_rater, run_simulation
        from textgym.app.prepare import prepare_rewards

        s = self.cfg.feedback.simulate
        prepare_rewards(None, s.rater)  # e.g. trains the sentiment classifier once
        rater = make_rater(s.rater)
        existing = {a.name for a in project.annotators()}
        tokens = {}
        for i in range(1, s.annotators + 1):  # the same names on resume: they continue their own queues
            name = f"sim-{i}"
            try:
                tokens[name] = project.reissue_token(name) if name in existing else project.add_annotator(name)
            except ProjectError as exc:
                raise RunFolderError(f"feedback.project: {exc}") from None
        c = project.counts()
        self._say(f"[feedback] {s.annotators} simulated annotators (rater {s.rater}, noise {s.noise}, edit rate "
                  f"{s.edit_rate}) judge {c['items'] - c['items_complete']} of {c['items']} items ...")
        with BackgroundServer(project) as url:
            res = run_simulation(url, tokens, rater, noise=s.noise, seed=self.cfg.seed if s.seed is None else s.seed,
                                 tasks=s.tasks, edit_rate=s.edit_rate)
        if res.errors:
            raise RunFolderError(f"the simulated annotators failed: {res.errors[0]} ({len(res.errors)} errors); "
                                 f"resume with: {self.resume_hint()}")
        self._say(f"[feedback] stored {len(res.acks)} judgments ({res.edits} with an edit) in {res.seconds:.0f} s")
        c = project.counts()
        if c["items_complete"] < c["items"]:  # e.g. fewer simulated annotators than judgments per item
            self._say(f"[feedback] note: {c['items'] - c['items_complete']} of {c['items']} items have fewer than "
                      f"{c['judgments_per_item']} judgments ({s.annotators} simulated annotators); the pair "
                      "stages use the judgments there are")

    def _wait_for_people(self, project: Any) -> None:
        p, c = self.cfg.feedback.people, project.counts()
        need = max(1, -(-int(round(p.min_complete * c["items"] * 1000)) // 1000))  # ceil, robust to float error
        if c["items"] and c["items_complete"] >= need:
            self._say(f"[feedback] {c['items_complete']} of {c['items']} items have their {c['judgments_per_item']} "
                      "judgments: continuing")
            return
        path = project.path
        raise WaitingForFeedback(
            f"[feedback] waiting for people: {c['items_complete']} of {c['items']} items of {path} have their "
            f"{c['judgments_per_item']} judgments ({need} needed). Add each person with `textgym feedback "
            f"add-annotator {path} NAME --url {p.url}` and hand them the login link it prints, serve the project "
            f"with `textgym feedback serve {path}` (people open {p.url}; `textgym feedback status {path}` shows "
            f"progress), then continue with `textgym train --resume {self.run_dir}`")

    # ------------------------------------------------------------------ 3. record
    @staticmethod
    def _feedback_summary(project: Any) -> dict[str, float]:
        from textgym.app.feedback.agreement import agreement_report
        from textgym.app.feedback.export import preference_pairs, sft_rows

        items, judgments = project.items(), project.judgments()
        c, a = project.counts(), agreement_report(judgments)
        pairs = preference_pairs(items, judgments)
        out = {k: float(c[k]) for k in ("items", "items_complete", "judgments", "skips", "annotators")}
        out.update({f"agreement/{k}": float(v) for k, v in a.items() if isinstance(v, (int, float))})
        out["edits"] = float(len(sft_rows(items, judgments)))
        out["pairs"] = float(len(pairs))
        for split in ("train", "validation", "test"):
            out[f"pairs/{split}"] = float(sum(r["split"] == split for r in pairs))
        return out
