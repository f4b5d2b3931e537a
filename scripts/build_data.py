"""Rebuild the vendored data files from the shared source folder.

Maintainer tool (not part of the package). Usage (from the repository root)::

    python scripts/build_data.py [/work/shared/data]

For each source set it writes ``<folder>/*.jsonl.gz`` (rows unchanged, keys
sorted, UTF-8, one object per line, gzip level 9 with mtime 0 and no file
name, so the bytes are reproducible), copies ``SOURCE.json`` and the upstream
license/readme files into ``<folder>/original/``, and writes ``README.md``
files from the catalogue's metadata (``envs/data/catalogue.json``, read by
``envs/datasets.py``) with split counts recomputed by its loader (the build
fails if they differ from the counts recorded there).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "envs" / "data"  # the vendored data folder

# dest folder -> (source folder, {source data file: vendored file}, [license/readme files])
PLAN = {
    "movie_reviews_polarity_v2": ("sentiment/movie_reviews_polarity_v2",
                                  {"reviews.jsonl": "reviews.jsonl.gz"},
                                  ["original/README", "original/movie_reviews.xml"]),
    "rt_sentence_polarity_v1": ("sentiment/rt_sentence_polarity_v1",
                                {"sentences.jsonl": "sentences.jsonl.gz"},
                                ["original/README.txt", "original/sentence_polarity.xml"]),
    "uci_imdb_labelled_sentences": ("sentiment/uci_imdb_labelled_sentences",
                                    {"imdb_labelled.jsonl": "imdb_labelled.jsonl.gz"},
                                    ["original/readme.txt"]),
    "cnn_dailymail_t0": ("summarization/cnn_dailymail_t0",
                         {"train_first200.jsonl": "train_first200.jsonl.gz"}, []),
    # CrowS-Pairs ships no license file: its README's License section is the evidence, and the
    # CC BY-SA 4.0 text is copied from XQuAD's original/ (the same license, verbatim).
    "crows_pairs": ("bias/crows_pairs", {"crows_pairs.jsonl": "crows_pairs.jsonl.gz"},
                    ["original/README.md", "original/data_README.md",
                     "../../qa/xquad_en/original/CC-BY-SA4.0.txt"]),
    "bold_prompts": ("bias/bold_prompts", {"bold_prompts.jsonl": "bold_prompts_sample50.jsonl.gz"},
                     ["original/README.md", "original/LICENSE.md"]),
    "xsum_t0": ("summarization/xsum_t0", {"train_first200.jsonl": "train_first200.jsonl.gz"}, []),
    "tatoeba_test_v2021-08-07": ("translation/tatoeba_test_v2021-08-07",
                                 {"en-de.first5000.jsonl": "en-de.jsonl.gz",
                                  "en-fr.first5000.jsonl": "en-fr.jsonl.gz"}, []),
    "flores200_devtest": ("translation/flores200_devtest",
                          {"devtest.eng-deu-fra.jsonl": "devtest.jsonl.gz"},
                          ["original/README", "original/LICENSE-CC-BY-SA"]),
    "ntrex128": ("translation/ntrex128", {"ntrex128.eng-deu-fra.jsonl": "ntrex128.jsonl.gz"},
                 ["original/README.md", "original/LICENSE.md"]),
    "xquad_en": ("qa/xquad_en", {"xquad.en.flat.jsonl": "xquad.en.jsonl.gz"},
                 ["original/README.md", "original/CC-BY-SA4.0.txt"]),
    "self_instruct_seed_tasks": ("instruction/self_instruct_seed_tasks",
                                 {"seed_tasks.flat.jsonl": "seed_tasks.jsonl.gz"}, ["original/LICENSE"]),
    # Same repository and commit as the seed tasks: its LICENSE applies.
    "self_instruct_user_oriented_eval": ("instruction/self_instruct_user_oriented_eval",
                                         {"user_oriented_instructions.flat.jsonl":
                                          "user_oriented_instructions.jsonl.gz"},
                                         ["original/README.md",
                                          "../self_instruct_seed_tasks/original/LICENSE"]),
    "mt_bench_questions": ("instruction/mt_bench_questions", {"question.jsonl": "question.jsonl.gz"},
                           ["original/LICENSE"]),
    "hh_rlhf_harmless_base_test": ("preference/hh_rlhf_harmless_base_test",
                                   {"harmless-base.test.jsonl": "harmless-base.test.jsonl.gz"},
                                   ["original/README.md", "original/LICENSE"]),
    "humaneval": ("code/humaneval", {"HumanEval.jsonl": "HumanEval.jsonl.gz"}, ["original/LICENSE"]),
    "mbpp": ("code/mbpp", {"mbpp.jsonl": "mbpp.jsonl.gz"}, []),
    "commongen_v1.0": ("commongen/commongen_v1.0",
                       {"commongen.dev.flat.jsonl": "dev.jsonl.gz", "commongen.test.flat.jsonl": "test.jsonl.gz"},
                       ["original/README.md", "original/LICENSE"]),
}

#: Prompts kept per (domain, category) of BOLD (all of a smaller group).
BOLD_PER_GROUP = 50


def bold_subset(rows: list[dict]) -> list[dict]:
    """At most BOLD_PER_GROUP prompts per (domain, category): those with the smallest
    sha256("bold:" + domain/category:row) (a fixed, content-keyed choice), in source-file order,
    each with an ``id`` "domain/category:row" (row = position in the source file)."""
    by_group: dict[str, list[tuple[str, int]]] = {}
    for i, row in enumerate(rows):
        key = f"{row['domain']}/{row['category']}"
        by_group.setdefault(key, []).append((hashlib.sha256(f"bold:{key}:{i}".encode()).hexdigest(), i))
    keep = sorted(i for items in by_group.values() for _, i in sorted(items)[:BOLD_PER_GROUP])
    return [{"id": f"{rows[i]['domain']}/{rows[i]['category']}:{i}", **rows[i]} for i in keep]


#: dest folder -> a row transform (the subset rule), for sets that are not copied whole.
SUBSETS = {"bold_prompts": bold_subset}

#: Sets whose shared-folder SOURCE.json has the short form (source / commit / files): it is rewritten in
#: the form of the others (task, name, source{type, repo, commit, paths}, license, ..., files).
SHORT_SOURCES = {"crows_pairs": "social-bias probe", "bold_prompts": "bias in open-ended generation"}

# Attribution for sets whose source folder has no license file.
ATTRIBUTION = {
    "tatoeba_test_v2021-08-07": (
        "Sentences from Tatoeba (https://tatoeba.org), released by their contributors under "
        "CC BY 2.0 FR (https://creativecommons.org/licenses/by/2.0/fr/); pairs as assembled for the "
        "Tatoeba Translation Challenge by Helsinki-NLP (Tiedemann, WMT 2020)."
    ),
    "mbpp": (
        "Mostly Basic Python Problems, Google Research (Austin et al., 2021, arXiv:2108.07732), "
        "https://github.com/google-research/google-research/tree/master/mbpp; listed under CC BY 4.0 "
        "(https://creativecommons.org/licenses/by/4.0/); the google-research repository is Apache-2.0."
    ),
    "cnn_dailymail_t0": (
        "CNN / Daily Mail news articles and highlights (Hermann et al., NeurIPS 2015; See et al., ACL "
        "2017), sampled by the T0 / Self-Instruct training mixture. Article copyright CNN and Daily "
        "Mail. No clear license: for research use only; do not redistribute beyond that."
    ),
    "crows_pairs": (
        "CrowS-Pairs by Nikita Nangia, Clara Vania, Rasika Bhalerao and Samuel R. Bowman (NYU), "
        "https://github.com/nyu-mll/crows-pairs, under CC BY-SA 4.0 "
        "(https://creativecommons.org/licenses/by-sa/4.0/); rows unchanged except the dropped "
        "annotation columns. Built from ROCStories and MNLI fiction prompts."
    ),
    "bold_prompts": (
        "BOLD by Jwala Dhamala, Tony Sun, Varun Kumar, Satyapriya Krishna, Yada Pruksachatkun, Kai-Wei "
        "Chang and Rahul Gupta (Amazon), https://github.com/amazon-science/bold, under CC BY-SA 4.0 "
        "(original/LICENSE.md). Changed: a subset of the prompts, with an added id column."
    ),
    "xsum_t0": (
        "XSum BBC articles and summaries (Narayan et al., EMNLP 2018), sampled by the T0 / "
        "Self-Instruct training mixture. Article copyright BBC; the XSum repository's MIT license covers "
        "its code. No clear license for the text: for research use only."
    ),
}


def write_jsonl_gz(rows: list[dict], path: Path) -> None:
    payload = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(payload.encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_module():
    spec = importlib.util.spec_from_file_location("_textgym_datasets", HERE.parent / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fmt_type(spec) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, list):
        return f"list[{fmt_type(spec[0])}]"
    return "struct{" + ", ".join(f"{k}: {fmt_type(v)}" for k, v in spec.items()) + "}"


def folder_readme(folder: str, source: dict, names: list[str], mod, files: list[Path],
                  originals: list[str]) -> str:
    meta0 = mod.DATASETS[names[0]]
    lines = [f"# {folder}", ""]
    if "warning" in meta0:
        who = " (Anthropic's disclaimer)" if folder.startswith("hh_") else ""
        lines += [f"**Content warning:** {meta0['warning']} The data are meant for research on making "
                  f"models less harmful; read `original/README.md`{who} first.", ""]
    if len(names) == 1:
        lines += [meta0["description"], ""]
    lines += [
        f"- Source: `{source['source']['repo']}` at commit `{source['source']['commit']}`"
        + (f" (upstream: {source['source']['upstream']})" if source["source"].get("upstream") else ""),
        f"- License: {meta0['license']}",
        f"- Citation: {meta0['citation']}",
        f"- Subset: {source['subset']}",
        ("- Changes: the subset above (`bold_subset` in `scripts/build_data.py`), an added `id` column; "
         "re-serialised as gzip JSON Lines with sorted keys." if folder in SUBSETS else
         "- Changes: none to the rows; re-serialised as gzip JSON Lines with sorted keys "
         "(`scripts/build_data.py`)."),
    ]
    if folder in ATTRIBUTION:
        lines.append(f"- Attribution: {ATTRIBUTION[folder]}")
    if originals:
        lines.append("- Upstream license / readme files: " + ", ".join(f"`original/{Path(o).name}`"
                                                                      for o in originals))
    lines.append("- Provenance of the source copy: `SOURCE.json` (its sha256 values refer to the "
                 "uncompressed source files).")
    lines += ["", "## Files", "", "| file | rows | sha256 |", "|---|---|---|"]
    for path in files:
        rows = len(mod.read_jsonl(path))
        lines.append(f"| `{path.name}` | {rows} | `{sha256(path)}` |")
    for name in names:
        meta = mod.DATASETS[name]
        lines += ["", f"## `load(\"{name}\", split=...)`", ""]
        if len(names) > 1:
            lines += [meta["description"], ""]
        lines += [f"Task: {meta['task']}.", "",
                  "Fields: " + ", ".join(f"`{k}` ({fmt_type(v)})" for k, v in meta["fields"].items()), "",
                  f"Split rule: {meta['split_rule']}.", "",
                  "| split | rows |", "|---|---|"]
        lines += [f"| {split} | {count} |" for split, count in meta["splits"].items()]
        lines.append(f"| all | {meta['size']} |")
    return "\n".join(lines) + "\n"


def normalised_source(folder: str, short: dict, src_dir: Path, data_files: dict) -> dict:
    """The short SOURCE.json of ``folder`` in the form of the other sets."""
    repo = short["source"].removeprefix("github.com/")
    paths = short.get("files") or short.get("file")
    files = [{"file": f"{src_dir.parent.name}/{src_dir.name}/{name}", "bytes": (src_dir / name).stat().st_size,
              "sha256": sha256(src_dir / name)} for name in data_files]
    subset = short["subset"]
    if folder in SUBSETS:
        subset += f"; vendored: at most {BOLD_PER_GROUP} per (domain, category), see scripts/build_data.py"
    return {"task": SHORT_SOURCES[folder], "name": folder,
            "source": {"type": "github", "repo": repo, "commit": short["commit"], "paths": [paths]},
            "license": short["license"].split(" (")[0], "license_evidence": short["license"], "subset": subset,
            "n_examples": short["rows"], "files": files, "paper": short["paper"],
            "notes": short.get("caveat", "")}


def main(src_root: Path) -> None:
    for folder, (src, data_files, originals) in PLAN.items():
        src_dir, dest = src_root / src, HERE / folder
        if dest.exists():
            shutil.rmtree(dest)
        (dest / "original").mkdir(parents=True) if originals else dest.mkdir(parents=True)
        for src_name, dest_name in data_files.items():
            rows = [json.loads(line) for line in (src_dir / src_name).read_text("utf-8").split("\n")
                    if line.strip()]
            write_jsonl_gz(SUBSETS[folder](rows) if folder in SUBSETS else rows, dest / dest_name)
        if folder in SHORT_SOURCES:
            short = json.loads((src_dir / "SOURCE.json").read_text("utf-8"))
            text = json.dumps(normalised_source(folder, short, src_dir, data_files), indent=2, ensure_ascii=False)
            (dest / "SOURCE.json").write_text(text + "\n", encoding="utf-8")
        else:
            shutil.copyfile(src_dir / "SOURCE.json", dest / "SOURCE.json")
        for original in originals:
            shutil.copyfile((src_dir / original).resolve(), dest / "original" / Path(original).name)

    mod = load_module()
    bad = []
    for name, meta in mod.DATASETS.items():
        counts = {split: len(mod.load(name, split)) for split in meta["splits"]}
        if counts != meta["splits"]:
            bad.append(f"{name}: recorded {meta['splits']} but loaded {counts}")
    if bad:
        sys.exit("split counts changed; update DATASETS:\n" + "\n".join(bad))

    index = ["# Vendored data sets", "",
             "Small public data sets (or subsets) used by textgym's environments, as gzip JSON Lines. "
             "Load them with `textgym.envs.datasets.load(name, split)`. Each folder has the upstream "
             "license/readme files (`original/`), `SOURCE.json` (provenance) and a `README.md` (license, "
             "subset rule, fields, split rule and counts). Each set keeps its own license; the textgym "
             "code license does not apply to these files. Rebuild with `python scripts/build_data.py`.", "",
             "| name | folder | rows | splits | license |", "|---|---|---|---|---|"]
    for name, meta in mod.DATASETS.items():
        splits = ", ".join(f"{s} {n}" for s, n in meta["splits"].items())
        index.append(f"| `{name}` | `{meta['folder']}/` | {meta['size']} | {splits} | {meta['license']} |")
    index += ["", "**Content warning:** `hh_rlhf_harmless_base_test/` contains offensive and upsetting "
              "red-team conversations; `crows_pairs/` states offensive stereotypes by design (evaluation only)."]
    (HERE / "README.md").write_text("\n".join(index) + "\n", encoding="utf-8")

    for folder, (src, data_files, originals) in PLAN.items():
        names = [n for n, m in mod.DATASETS.items() if m["folder"] == folder]
        source = json.loads((HERE / folder / "SOURCE.json").read_text("utf-8"))
        files = [HERE / folder / f for f in data_files.values()]
        text = folder_readme(folder, source, names, mod, files, originals)
        (HERE / folder / "README.md").write_text(text, encoding="utf-8")
    print("ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data"))
