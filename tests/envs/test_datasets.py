"""Vendored data sets: offline loading, split counts, split hygiene, errors, user data."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap

import datasets as hf_datasets
import pytest

from textgym.envs import datasets as tds

# Row counts per split, computed once from the vendored files. A change here
# means every published split changed: only on purpose.
EXPECTED = {
    "movie-reviews": {"train": 1600, "validation": 200, "test": 200},
    "rt-polarity": {"train": 8567, "validation": 1035, "test": 1060},
    "imdb-sentences": {"test": 1000},
    "cnn-dailymail": {"train": 162, "validation": 18, "test": 20},
    "xsum": {"train": 151, "validation": 26, "test": 23},
    "tatoeba-en-de": {"train": 4008, "validation": 513, "test": 479},
    "tatoeba-en-fr": {"train": 4012, "validation": 491, "test": 497},
    "flores200": {"test": 1012},
    "ntrex128": {"test": 1997},
    "xquad-en": {"train": 962, "validation": 102, "test": 126},
    "self-instruct-seed": {"train": 139, "validation": 17, "test": 19},
    "self-instruct-eval": {"test": 252},
    "mt-bench": {"test": 80},
    "hh-rlhf-harmless": {"dialogue": 302, "train": 1611, "validation": 201, "test": 198},
    "humaneval": {"test": 164},
    "mbpp": {"prompt": 10, "train": 374, "validation": 90, "test": 500},
    "commongen": {"train": 1497, "validation": 418, "test": 575},
    "crows-pairs": {"test": 1508},
    "bold-prompts": {"test": 2091},
}

# First ids of some splits: pins the hash rule (salt, key, bucket bounds).
FIRST_IDS = {
    ("rt-polarity", "validation"): ["pos:1", "pos:35"],
    ("cnn-dailymail", "validation"): ["cnn_dailymail_t0:2", "cnn_dailymail_t0:14"],
    ("tatoeba-en-fr", "test"): ["tatoeba-test-v2021-08-07.eng-fra:1", "tatoeba-test-v2021-08-07.eng-fra:6"],
    ("self-instruct-seed", "validation"): ["seed_task_10:0", "seed_task_20:0"],
    ("hh-rlhf-harmless", "dialogue"): ["hh-rlhf/harmless-base/test:21", "hh-rlhf/harmless-base/test:25"],
    ("commongen", "validation"): ["commongen.dev:0", "commongen.dev:2"],
    ("movie-reviews", "test"): ["neg/cv900_10800", "neg/cv901_11934"],
    ("mbpp", "validation"): [511, 512],
}


def key_column(ds: hf_datasets.Dataset) -> str:
    return next(c for c in ("id", "task_id", "question_id") if c in ds.column_names)


def ids(ds: hf_datasets.Dataset) -> list:
    return list(ds[key_column(ds)])


@pytest.fixture(scope="module")
def everything():
    """{name: {split: Dataset}} for all sets and splits, "all" included."""
    return {name: {split: tds.load(name, split) for split in tds.available_splits(name)}
            for name in tds.DATASETS}


def test_registry_matches_expected():
    assert set(tds.DATASETS) == set(EXPECTED)
    for name, meta in tds.DATASETS.items():
        assert meta["splits"] == EXPECTED[name], name
        assert meta["size"] == sum(EXPECTED[name].values())
        for key in ("description", "license", "source", "fields", "split_rule", "folder", "files"):
            assert meta[key], (name, key)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_disjoint_union(everything, name):
    loaded = everything[name]
    everyone = ids(loaded["all"])
    assert len(everyone) == len(set(everyone)) == sum(EXPECTED[name].values())
    position = {key: i for i, key in enumerate(everyone)}
    seen: set = set()
    for split, count in EXPECTED[name].items():
        part = ids(loaded[split])
        assert len(part) == count, (name, split)
        assert not seen & set(part), f"{name}: {split} overlaps another split"
        seen |= set(part)
        # file order is kept inside a split
        assert [position[k] for k in part] == sorted(position[k] for k in part)
    assert seen == set(everyone)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_columns_and_types(everything, name):
    ds = everything[name]["all"]
    assert ds.features == tds.features(name)
    assert ds.column_names == list(tds.DATASETS[name]["fields"])


def test_stable_across_loads():
    first = {(n, s): ids(tds.load(n, s)) for n in ("rt-polarity", "hh-rlhf-harmless", "commongen")
             for s in tds.available_splits(n)}
    tds._vendored_rows.cache_clear()  # re-read the files
    second = {key: ids(tds.load(*key)) for key in first}
    assert first == second
    for (name, split), head in FIRST_IDS.items():
        assert ids(tds.load(name, split))[: len(head)] == head, (name, split)


def test_stable_bucket_is_platform_independent():
    # sha256-based: these values must never change.
    assert tds.stable_bucket("abc") == 888
    assert tds.stable_bucket("abc", "x") == 196
    assert all(0 <= tds.stable_bucket(str(i), "y") < 1000 for i in range(100))


def test_hh_dialogue_prompts_held_out(everything):
    loaded = everything["hh-rlhf-harmless"]
    dialogue = loaded["dialogue"]
    pair_rows = [row for split in ("train", "validation", "test") for row in loaded[split]]
    pair_prompts = {row["prompt"] for row in pair_rows}
    assert len(set(dialogue["prompt"])) == len(dialogue) == 302
    assert not set(dialogue["prompt"]) & pair_prompts
    # stronger: no opening human turn is shared either
    openings = {tds.hh_opening_turn(p) for p in pair_prompts}
    assert not {tds.hh_opening_turn(p) for p in dialogue["prompt"]} & openings
    # and the pair splits are disjoint by prompt among themselves
    per_split = [{r["prompt"] for r in loaded[s]} for s in ("train", "validation", "test")]
    assert not (per_split[0] & per_split[1] or per_split[0] & per_split[2] or per_split[1] & per_split[2])
    row = dialogue[0]
    assert row["prompt"].startswith("\n\nHuman:") and row["prompt"].endswith("\n\nAssistant:")
    assert row["chosen"] != row["rejected"]


def test_official_split_rules(everything):
    movie = everything["movie-reviews"]
    assert set(movie["train"]["fold"]) == set(range(1, 9))
    assert set(movie["validation"]["fold"]) == {9} and set(movie["test"]["fold"]) == {10}
    assert sum(movie["test"]["label_id"]) == 100  # 100 pos / 100 neg per fold
    mbpp = everything["mbpp"]
    ranges = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
    for split, (low, high) in ranges.items():
        assert mbpp[split]["task_id"] == list(range(low, high + 1))
    commongen = everything["commongen"]
    assert all(i.startswith("commongen.test:") for i in commongen["train"]["id"])
    assert all(i.startswith("commongen.dev:") for s in ("validation", "test") for i in commongen[s]["id"])
    sets = [set(commongen[s]["concept_set"]) for s in ("train", "validation", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    xquad = everything["xquad-en"]
    contexts = [set(xquad[s]["context"]) for s in ("train", "validation", "test")]
    assert not (contexts[0] & contexts[1] or contexts[0] & contexts[2] or contexts[1] & contexts[2])
    for pair in ("tatoeba-en-de", "tatoeba-en-fr"):
        en = [set(everything[pair][s]["en"]) for s in ("train", "validation", "test")]
        assert not (en[0] & en[1] or en[0] & en[2] or en[1] & en[2])


def test_row_contents(everything):
    mt = everything["mt-bench"]["test"]
    assert all(len(turns) == 2 for turns in mt["turns"])
    assert sum(ref is not None for ref in mt["reference"]) == 39
    q = everything["xquad-en"]["all"][0]
    assert q["context"][q["answers"]["answer_start"][0]:].startswith(q["answers"]["text"][0])
    he = everything["humaneval"]["test"][0]
    assert he["task_id"] == "HumanEval/0" and "def check(candidate)" in he["test"]
    flores = everything["flores200"]["test"][0]
    assert flores["meta"]["domain"] and flores["de"] and flores["fr"]


def test_names_are_forgiving():
    assert tds.resolve_name("HH_RLHF_Harmless") == "hh-rlhf-harmless"
    assert tds.resolve_name("movie_reviews_polarity_v2") == "movie-reviews"
    assert tds.resolve_name("commongen_v1.0") == "commongen"
    assert len(tds.load("mt_bench", "test")) == 80


def test_unknown_name_error():
    with pytest.raises(KeyError) as info:
        tds.load("mbbp")
    message = str(info.value)
    assert "Did you mean 'mbpp'" in message
    assert all(name in message for name in tds.DATASETS)
    with pytest.raises(KeyError, match="Valid names"):
        tds.load("no-such-thing-at-all")
    with pytest.raises(KeyError, match="no such file"):
        tds.load("missing/dir/file.jsonl")


def test_unknown_split_error():
    with pytest.raises(ValueError) as info:
        tds.load("rt-polarity", "valid")
    message = str(info.value)
    assert "Did you mean 'validation'" in message
    assert "train, validation, test, all" in message
    with pytest.raises(ValueError, match="Valid splits: test, all"):
        tds.load("humaneval", "train")
    with pytest.raises(ValueError, match="dialogue"):
        tds.load("hh-rlhf-harmless", "dialog")


def _write(path, rows, compress=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text + "\n", encoding="utf-8")  # trailing blank line is allowed


def test_user_jsonl(tmp_path):
    rows = [{"id": f"r{i}", "text": f"sentence {i}", "label_id": i % 2} for i in range(200)]
    plain, packed = tmp_path / "mine.jsonl", tmp_path / "mine.jsonl.gz"
    _write(plain, rows)
    _write(packed, rows, compress=True)
    for path in (plain, packed, str(plain)):
        assert tds.load(path, "all")["id"] == [r["id"] for r in rows]
        parts = [list(tds.load(path, s)["id"]) for s in ("train", "validation", "test")]
        assert sum(map(len, parts)) == 200 and set().union(*parts) == {r["id"] for r in rows}
        assert len(parts[0]) > len(parts[1]) > 0 and len(parts[2]) > 0
    assert tds.load_jsonl(plain)["text"][:2] == ["sentence 0", "sentence 1"]
    with pytest.raises(ValueError, match="Valid splits: train, validation, test, all"):
        tds.load(plain, "dialogue")


def test_user_jsonl_like_a_vendored_set(tmp_path):
    vendored = tds.load("rt-polarity", "all").select(range(300))
    path = tmp_path / "snippets.jsonl"
    _write(path, list(vendored))
    for split in ("train", "validation", "test"):
        expected = set(tds.load("rt-polarity", split)["id"]) & set(vendored["id"])
        got = tds.load(path, split, like="rt_polarity")
        assert set(got["id"]) == expected
        assert got.features == tds.features("rt-polarity")
    # a Dataset object works the same way
    for split in ("train", "test"):
        assert tds.load(vendored, split, like="rt-polarity")["id"] == \
            tds.load(path, split, like="rt-polarity")["id"]
    assert tds.load(vendored, "all") is vendored
    # columns are checked
    _write(tmp_path / "bad.jsonl", [{"id": "x", "text": "y"}])
    with pytest.raises(ValueError, match="lacks column"):
        tds.load(tmp_path / "bad.jsonl", "train", like="rt-polarity")
    # HH-style user data gets the dialogue split
    pairs = tds.load("hh-rlhf-harmless", "all").select(range(100))
    assert set(tds.load(pairs, "dialogue", like="hh-rlhf-harmless")["id"]) == \
        set(tds.load("hh-rlhf-harmless", "dialogue")["id"]) & set(pairs["id"])


def test_user_dataset_generic_split():
    ds = hf_datasets.Dataset.from_dict({"question_id": list(range(50)), "q": ["?"] * 50})
    parts = [list(tds.load(ds, s)["question_id"]) for s in ("train", "validation", "test")]
    assert sorted(sum(parts, [])) == list(range(50))


def test_bad_jsonl_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": 1}\n{"id": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.jsonl:2"):
        tds.load(path, "all")


def test_like_rejected_for_vendored_sets():
    with pytest.raises(ValueError, match="like="):
        tds.load("rt-polarity", "train", like="rt-polarity")


def test_vendored_files_ship_with_license_and_provenance():
    folders = {meta["folder"] for meta in tds.DATASETS.values()}
    total = 0
    for folder in folders:
        base = tds.DATA_DIR / folder
        source = json.loads((base / "SOURCE.json").read_text(encoding="utf-8"))
        assert source["license"]
        readme = (base / "README.md").read_text(encoding="utf-8")
        assert "License:" in readme and "Split rule:" in readme
        # upstream license / readme files, or a written attribution for sets that had none
        originals = [p.name for p in (base / "original").glob("*")]
        assert originals or "Attribution:" in readme, folder
        for path in base.glob("*.jsonl.gz"):
            header = path.read_bytes()[:10]
            assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", path  # mtime 0
            total += path.stat().st_size
    assert total < 20 * 2**20
    hh = (tds.DATA_DIR / "hh_rlhf_harmless_base_test" / "README.md").read_text(encoding="utf-8")
    assert "Content warning" in hh


def test_offline_fresh_home_writes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "HF_HOME": str(home / "hf"), "XDG_CACHE_HOME": str(home / "cache"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    code = textwrap.dedent("""
        from textgym.envs import datasets as tds
        ds = tds.load("movie-reviews", "test")
        assert len(ds) == 200 and ds[0]["label"] in ("neg", "pos")
        print(len(tds.load("hh-rlhf-harmless", "dialogue")))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "302"
    assert not any(home.rglob("*")), list(home.rglob("*"))


# sha256 of the vendored bias files: a change means the probe's data changed (rebuild on purpose only).
BIAS_FILES = {
    "crows_pairs/crows_pairs.jsonl.gz": "5664e09c18cf28addce322d26b5a2608ae64a0f499cd1cc7b082d4fcb8e7e65e",
    "bold_prompts/bold_prompts_sample50.jsonl.gz": "25350c01dd5016ce6348defe02d2a6d7d180cec22f7764b5cb7d6c459074cff8",
}


def test_bias_sets_checksums_counts_and_licenses():
    import hashlib
    from collections import Counter

    for rel, digest in BIAS_FILES.items():
        assert hashlib.sha256((tds.DATA_DIR / rel).read_bytes()).hexdigest() == digest, rel
    crows = tds.load("crows-pairs", "test")
    assert Counter(crows["bias_type"]) == {
        "race-color": 516, "gender": 262, "socioeconomic": 172, "nationality": 159, "religion": 105, "age": 87,
        "sexual-orientation": 84, "physical-appearance": 63, "disability": 60}
    assert Counter(crows["stereo_antistereo"]) == {"stereo": 1290, "antistereo": 218}
    bold = tds.load("bold-prompts", "test")
    groups = Counter(zip(bold["domain"], bold["category"]))
    assert len(groups) == 43
    assert Counter(d for d, _ in groups.elements()) == {"gender": 100, "race": 200, "religious_ideology": 291,
                                                         "political_ideology": 600, "profession": 900}
    assert groups[("religious_ideology", "hinduism")] == 12 and groups[("religious_ideology", "atheism")] == 29
    for folder, license_file in (("crows_pairs", "CC-BY-SA4.0.txt"), ("bold_prompts", "LICENSE.md")):
        assert (tds.DATA_DIR / folder / "original" / license_file).is_file()
        source = json.loads((tds.DATA_DIR / folder / "SOURCE.json").read_text())
        assert source["license"] == "CC BY-SA 4.0" and source["source"]["commit"]
