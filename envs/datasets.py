"""Real data sets shipped with textgym, with fixed, reproducible splits.

Every set listed in :data:`DATASETS` is vendored inside the package (under
``textgym/envs/data/<folder>/``) as gzip-compressed JSON Lines, next to its
``SOURCE.json`` (provenance: repository, commit, license evidence, subset
rule), the upstream license/readme files (``original/``) and a ``README.md``.
Nothing is downloaded: :func:`load` reads the local file and builds an
in-memory :class:`datasets.Dataset` with :meth:`datasets.Dataset.from_dict`,
so it works with ``HF_DATASETS_OFFLINE=1``, a fresh ``HOME`` and a read-only
install, and it never writes a cache file.

Quick use::

    from textgym.envs import datasets as tds
    train = tds.load("rt-polarity", split="train")      # datasets.Dataset
    pairs = tds.load("hh-rlhf-harmless", split="validation")
    chats = tds.load("hh-rlhf-harmless", split="dialogue")
    mine = tds.load("my_reviews.jsonl", split="test")     # your own file
    mine = tds.load("my_reviews.jsonl", split="test", like="rt-polarity")

Sets (name: rows; splits; license)
----------------------------------
==================  =====  =====================================================  =====================
name                rows   splits (rows)                                          license
==================  =====  =====================================================  =====================
movie-reviews       2000   train 1600 / validation 200 / test 200                 CC BY 4.0
rt-polarity         10662  train 8567 / validation 1035 / test 1060               CC BY 4.0
imdb-sentences      1000   test 1000                                              CC BY 4.0
cnn-dailymail       200    train 162 / validation 18 / test 20                    unclear, research use
xsum                200    train 151 / validation 26 / test 23                    unclear, research use
tatoeba-en-de       5000   train 4008 / validation 513 / test 479                 CC BY 2.0 FR
tatoeba-en-fr       5000   train 4012 / validation 491 / test 497                 CC BY 2.0 FR
flores200           1012   test 1012                                              CC BY-SA 4.0
ntrex128            1997   test 1997                                              CC BY-SA 4.0
xquad-en            1190   train 962 / validation 102 / test 126                  CC BY-SA 4.0
self-instruct-seed  175    train 139 / validation 17 / test 19                    Apache-2.0
self-instruct-eval  252    test 252                                               Apache-2.0
mt-bench            80     test 80                                                Apache-2.0
hh-rlhf-harmless    2312   dialogue 302 / train 1611 / validation 201 / test 198  MIT
humaneval           164    test 164                                               MIT
mbpp                974    prompt 10 / train 374 / validation 90 / test 500       CC BY 4.0
commongen           2490   train 1497 / validation 418 / test 575                 MIT
crows-pairs         1508   test 1508                                              CC BY-SA 4.0
bold-prompts        2091   test 2091                                              CC BY-SA 4.0
==================  =====  =====================================================  =====================

(The authoritative counts are ``DATASETS[name]["splits"]``; the test-suite
checks them.)  Every set also has the split ``"all"``: every row, in file
order.

Split rules
-----------
Splits are disjoint, their union is ``"all"``, rows keep file order inside a
split, and the assignment depends only on the row's content, never on the
platform, Python's ``hash()`` seed, or the other rows. Where a set has
official splits they are used; otherwise a row goes to a split by
:func:`stable_bucket` -- the first 8 bytes of ``sha256("textgym-v1" + NUL +
<set name> + ":" + <key>)`` as a big-endian integer, modulo 1000 -- with
buckets 0-799 train, 800-899 validation, 900-999 test. The key is chosen so
that near-duplicates cannot straddle splits:

* ``movie-reviews``: Pang & Lee's 10 cross-validation folds (``fold``):
  1-8 train, 9 validation, 10 test.
* ``rt-polarity``, ``cnn-dailymail``, ``xsum``, ``self-instruct-seed``: hash
  of ``id``.
* ``tatoeba-en-de`` / ``tatoeba-en-fr``: hash of the English sentence
  (``en``), so a repeated source sentence stays in one split.
* ``xquad-en``: hash of the paragraph (``context``): all questions about one
  paragraph stay together.
* ``imdb-sentences``, ``flores200``, ``ntrex128``, ``self-instruct-eval``,
  ``mt-bench``, ``humaneval``, ``crows-pairs``, ``bold-prompts``: evaluation
  sets, split ``"test"`` only.
  (The Self-Instruct authors ask that their user-oriented set is never used
  for training.)
* ``mbpp``: the official task_id ranges: 1-10 ``"prompt"`` (few-shot
  examples), 11-510 test, 511-600 validation, 601-974 (and any other id)
  train.
* ``commongen``: only CommonGen's dev and test files are public with
  references. Upstream *test* rows (ids ``commongen.test:*``, whose
  references were later withdrawn from the leaderboard) form ``"train"``;
  upstream *dev* rows (``commongen.dev:*``) are divided by hash of
  ``concept_set``: buckets 0-399 validation, 400-999 test. Rows with other
  ids (your own data with ``like="commongen"``) use the default 80/10/10 hash
  of ``concept_set``.
* ``hh-rlhf-harmless``: rows are grouped by the conversation's *opening human
  turn* (whitespace-collapsed, lower-cased); identical prompts therefore
  always share a group, and so do different conversations that start with the
  same request. Group hash buckets 0-129 form ``"dialogue"`` -- a held-out
  block of conversations for a dialogue environment whose prompts (and
  opening turns) never occur in the reward-model pairs -- and 130-829 train,
  830-914 validation, 915-999 test.

Your own data
-------------
``load(path_or_dataset, split=...)`` also takes a ``.jsonl`` / ``.jsonl.gz``
path or a :class:`datasets.Dataset`. Without ``like=`` the generic 80/10/10
hash rule keys on ``id`` (else ``task_id``, else ``question_id``, else the
whole row as canonical JSON) and column types are inferred. With
``like="<name>"`` the rows must have that set's columns, get its types, and
are split with its rule (a row equal to a vendored one lands in the same
split).

Licenses
--------
Each set keeps its own license (``DATASETS[name]["license"]``); the textgym
code license does not apply to the data. CC BY-SA sets (FLORES-200,
NTREX-128, XQuAD, CrowS-Pairs, BOLD) must stay under CC BY-SA when
redistributed; CrowS-Pairs' authors ask that it is used for evaluation only. The two
summarization subsets have no clear license (news articles copyright CNN /
Daily Mail / BBC): research use only. **hh-rlhf-harmless contains offensive
and upsetting red-team text** (see its README); **crows-pairs states
offensive stereotypes by design**.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import datasets as hf_datasets

__all__ = [
    "DATASETS",
    "DATA_DIR",
    "SALT",
    "UnknownDatasetError",
    "available_splits",
    "features",
    "load",
    "load_jsonl",
    "read_jsonl",
    "resolve_name",
    "split_of",
    "stable_bucket",
]

#: Folder holding the vendored files (one sub-folder per source data set).
DATA_DIR = Path(__file__).resolve().parent / "data"

#: Salt of :func:`stable_bucket`; changing it would reshuffle every hash split.
SALT = "textgym-v1"

PathOrData = Union[str, "os.PathLike[str]", hf_datasets.Dataset]


class UnknownDatasetError(KeyError):
    """Raised by :func:`load` for a name that is neither a set nor a file."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------
# split rules


def stable_bucket(key: str, namespace: str = "", buckets: int = 1000) -> int:
    """Return a platform-independent bucket in ``range(buckets)`` for ``key``.

    ``int.from_bytes(sha256(SALT + "\\0" + namespace + ":" + key)[:8], "big")
    % buckets``. Unlike :func:`hash`, the result is the same on every
    platform, Python version and run.
    """
    data = f"{SALT}\0{namespace}:{key}".encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % buckets


_STANDARD = (("train", 800), ("validation", 900), ("test", 1000))

Rule = Callable[[Mapping[str, Any]], str]


def _by_bucket(bucket: int, bounds: Sequence[tuple[str, int]]) -> str:
    for name, upper in bounds:
        if bucket < upper:
            return name
    raise AssertionError("bucket out of range")  # pragma: no cover


def _hash_rule(namespace: str, key: Callable[[Mapping[str, Any]], Any],
               bounds: Sequence[tuple[str, int]] = _STANDARD) -> Rule:
    def rule(row: Mapping[str, Any]) -> str:
        return _by_bucket(stable_bucket(str(key(row)), namespace), bounds)

    return rule


def _column(name: str) -> Callable[[Mapping[str, Any]], Any]:
    def get(row: Mapping[str, Any]) -> Any:
        value = row.get(name)
        if value is None:
            raise ValueError(f"row has no {name!r} value, needed by the split rule: {dict(row)!r:.200}")
        return value

    return get


def _test_only(row: Mapping[str, Any]) -> str:
    return "test"


def _movie_fold(row: Mapping[str, Any]) -> str:
    fold = int(_column("fold")(row))
    return {9: "validation", 10: "test"}.get(fold, "train")


def _mbpp_task(row: Mapping[str, Any]) -> str:
    task_id = int(_column("task_id")(row))
    if 1 <= task_id <= 10:
        return "prompt"
    if 11 <= task_id <= 510:
        return "test"
    if 511 <= task_id <= 600:
        return "validation"
    return "train"


_COMMONGEN_DEV = (("validation", 400), ("test", 1000))


def _commongen(row: Mapping[str, Any]) -> str:
    row_id = str(row.get("id") or "")
    key = str(_column("concept_set")(row))
    if row_id.startswith("commongen.test:"):
        return "train"
    if row_id.startswith("commongen.dev:"):
        return _by_bucket(stable_bucket(key, "commongen"), _COMMONGEN_DEV)
    return _by_bucket(stable_bucket(key, "commongen"), _STANDARD)


_HH_BOUNDS = (("dialogue", 130), ("train", 830), ("validation", 915), ("test", 1000))
_OPENING = re.compile(r"\s*Human:\s*(.*?)(?:\n\nAssistant:|\Z)", re.S)


def hh_opening_turn(prompt: str) -> str:
    """Normalised first human turn of an HH-RLHF transcript (the group key)."""
    match = _OPENING.match(prompt)
    text = match.group(1) if match else prompt
    return " ".join(text.split()).lower()


def _hh(row: Mapping[str, Any]) -> str:
    key = hh_opening_turn(str(_column("prompt")(row)))
    return _by_bucket(stable_bucket(key, "hh-rlhf-harmless"), _HH_BOUNDS)


def _generic_key(row: Mapping[str, Any]) -> str:
    for column in ("id", "task_id", "question_id"):
        if row.get(column) is not None:
            return str(row[column])
    return json.dumps(dict(row), sort_keys=True, ensure_ascii=False, default=str)


_GENERIC_RULE = _hash_rule("user", _generic_key)
_GENERIC_SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------
# registry

_TEXT_CLS = {"id": "string", "label": "string", "label_id": "int64", "text": "string"}
_SUMMARY = {"id": "string", "document": "string", "summary": "string", "document_truncated": "bool"}
_STD_RULE_TEXT = "hash of {key}: buckets 0-799 train, 800-899 validation, 900-999 test"

# Field types use a small notation: "string" / "int64" / "bool" are
# datasets.Value dtypes, ["string"] a list of strings, {...} a struct.
_REGISTRY: dict[str, dict[str, Any]] = {
    "movie-reviews": dict(
        task="sentiment continuation (review prefixes as prompts)",
        folder="movie_reviews_polarity_v2",
        files=("reviews.jsonl.gz",),
        description=(
            "Pang & Lee (2004) Sentiment Polarity Dataset v2.0: 2000 full movie reviews from the IMDb "
            "archive of rec.arts.movies.reviews, 1000 pos / 1000 neg, lower-cased and tokenized by the "
            "authors (' , ', ' . '). label_id: 0 = neg, 1 = pos."
        ),
        license="CC BY 4.0 (Copyright (C) 2004 Bo Pang and Lillian Lee; distributed with NLTK)",
        source="nltk/nltk_data@5db857e6 packages/corpora/movie_reviews.zip",
        citation="Pang & Lee, A Sentimental Education, ACL 2004",
        fields={**_TEXT_CLS, "fold": "int64"},
        split_rule="official 10 folds (fold): 1-8 train, 9 validation, 10 test",
        splits={"train": 1600, "validation": 200, "test": 200},
        rule=_movie_fold,
    ),
    "rt-polarity": dict(
        task="sentiment classifier training",
        folder="rt_sentence_polarity_v1",
        files=("sentences.jsonl.gz",),
        description=(
            "Pang & Lee (2005) sentence polarity v1.0: 5331 positive + 5331 negative Rotten Tomatoes "
            "review snippets, lower-cased and tokenized. label_id: 0 = neg, 1 = pos."
        ),
        license="CC BY 4.0 (Bo Pang and Lillian Lee; distributed with NLTK)",
        source="nltk/nltk_data@5db857e6 packages/corpora/sentence_polarity.zip",
        citation="Pang & Lee, Seeing stars, ACL 2005",
        fields=dict(_TEXT_CLS),
        split_rule=_STD_RULE_TEXT.format(key="id"),
        splits={"train": 8567, "validation": 1035, "test": 1060},
        rule=_hash_rule("rt-polarity", _column("id")),
    ),
    "imdb-sentences": dict(
        task="sentiment classifier evaluation",
        folder="uci_imdb_labelled_sentences",
        files=("imdb_labelled.jsonl.gz",),
        description=(
            "UCI 'Sentiment Labelled Sentences', IMDb part (Kotzias et al., KDD 2015): 1000 sentences, "
            "500 pos / 500 neg, original casing. label_id: 0 = neg, 1 = pos."
        ),
        license="CC BY 4.0 (as listed by the UCI repository; the readme asks to cite the paper)",
        source="UCI ML Repository, via omarsar/dm_2018_hw_1@96424884",
        citation="Kotzias et al., From Group to Individual Labels using Deep Features, KDD 2015",
        fields=dict(_TEXT_CLS),
        split_rule="evaluation set: test only",
        splits={"test": 1000},
        rule=_test_only,
    ),
    "cnn-dailymail": dict(
        task="summarization",
        folder="cnn_dailymail_t0",
        files=("train_first200.jsonl.gz",),
        description=(
            "First 200 CNN/DailyMail (3.0.0, train) article/highlights pairs as sampled into the T0 "
            "training mixture by self-instruct. Articles were cut to ~340 words by that preprocessing: "
            "document_truncated marks the cut ones (they end with '...'); summaries are complete."
        ),
        license="unclear: article copyright CNN / Daily Mail; treat as research use only",
        source="yizhongw/self-instruct@0b26ccaa data/finetuning/t0_train_50k (cnn_dailymail_3_0_0_news_summary)",
        citation="Hermann et al. 2015; See et al. 2017",
        fields=dict(_SUMMARY),
        split_rule=_STD_RULE_TEXT.format(key="id"),
        splits={"train": 162, "validation": 18, "test": 20},
        rule=_hash_rule("cnn-dailymail", _column("id")),
    ),
    "xsum": dict(
        task="summarization",
        folder="xsum_t0",
        files=("train_first200.jsonl.gz",),
        description=(
            "First 200 XSum (train) BBC article / one-sentence summary pairs as sampled into the T0 "
            "training mixture by self-instruct. Articles were cut to ~340 words by that preprocessing: "
            "document_truncated marks the cut ones; summaries are complete."
        ),
        license="unclear: article copyright BBC (XSum repository code is MIT); research use only",
        source="yizhongw/self-instruct@0b26ccaa data/finetuning/t0_train_50k (xsum_summarize_DOC)",
        citation="Narayan et al., Don't Give Me the Details, Just the Summary!, EMNLP 2018",
        fields=dict(_SUMMARY),
        split_rule=_STD_RULE_TEXT.format(key="id"),
        splits={"train": 151, "validation": 26, "test": 23},
        rule=_hash_rule("xsum", _column("id")),
    ),
    "tatoeba-en-de": dict(
        task="translation en-de (training)",
        folder="tatoeba_test_v2021-08-07",
        files=("en-de.jsonl.gz",),
        description=(
            "First 5000 (file order) of 17565 English-German pairs of the Tatoeba Challenge test set "
            "v2021-08-07: short everyday sentences from tatoeba.org."
        ),
        license="CC BY 2.0 FR (Tatoeba sentences, https://tatoeba.org)",
        source="Helsinki-NLP/OPUS-MT-testsets@ac0f19c0 datasets/helsinki_nlp/tatoeba (deu-eng)",
        citation="Tiedemann, The Tatoeba Translation Challenge, WMT 2020",
        fields={"id": "string", "en": "string", "de": "string"},
        split_rule=_STD_RULE_TEXT.format(key="the English sentence (en)"),
        splits={"train": 4008, "validation": 513, "test": 479},
        rule=_hash_rule("tatoeba", _column("en")),
    ),
    "tatoeba-en-fr": dict(
        task="translation en-fr (training)",
        folder="tatoeba_test_v2021-08-07",
        files=("en-fr.jsonl.gz",),
        description=(
            "First 5000 (file order) of 12681 English-French pairs of the Tatoeba Challenge test set "
            "v2021-08-07: short everyday sentences from tatoeba.org."
        ),
        license="CC BY 2.0 FR (Tatoeba sentences, https://tatoeba.org)",
        source="Helsinki-NLP/OPUS-MT-testsets@ac0f19c0 datasets/helsinki_nlp/tatoeba (eng-fra)",
        citation="Tiedemann, The Tatoeba Translation Challenge, WMT 2020",
        fields={"id": "string", "en": "string", "fr": "string"},
        split_rule=_STD_RULE_TEXT.format(key="the English sentence (en)"),
        splits={"train": 4012, "validation": 491, "test": 497},
        rule=_hash_rule("tatoeba", _column("en")),
    ),
    "flores200": dict(
        task="translation evaluation (en, de, fr multi-way aligned)",
        folder="flores200_devtest",
        files=("devtest.jsonl.gz",),
        description=(
            "FLORES-200 devtest, 1012 sentences from Wikinews/Wikijunior/Wikivoyage, aligned across "
            "English, German and French, with per-sentence metadata (URL, domain, topic, ...)."
        ),
        license="CC BY-SA 4.0",
        source="Helsinki-NLP/OPUS-MT-testsets@ac0f19c0 datasets/facebook/flores/flores200_dataset/devtest",
        citation="NLLB Team, No Language Left Behind, 2022; Goyal et al., FLORES-101, 2022",
        fields={
            "id": "string", "en": "string", "de": "string", "fr": "string",
            "meta": {"URL": "string", "domain": "string", "topic": "string",
                     "has_image": "string", "has_hyperlink": "string"},
        },
        split_rule="evaluation set: test only",
        splits={"test": 1012},
        rule=_test_only,
    ),
    "ntrex128": dict(
        task="translation evaluation (en, de, fr)",
        folder="ntrex128",
        files=("ntrex128.jsonl.gz",),
        description=(
            "NTREX-128: the 1997 English sentences of WMT newstest2019 with professional German and "
            "French translations (news domain)."
        ),
        license="CC BY-SA 4.0",
        source="Helsinki-NLP/OPUS-MT-testsets@ac0f19c0 datasets/microsoft/ntrex (upstream MicrosoftTranslator/NTREX)",
        citation="Federmann et al., NTREX-128, SUMEval 2022",
        fields={"id": "string", "en": "string", "de": "string", "fr": "string"},
        split_rule="evaluation set: test only",
        splits={"test": 1997},
        rule=_test_only,
    ),
    "xquad-en": dict(
        task="extractive question answering",
        folder="xquad_en",
        files=("xquad.en.jsonl.gz",),
        description=(
            "XQuAD English: 1190 SQuAD v1.1 (dev) questions over 240 Wikipedia paragraphs from 48 "
            "articles; answers = {'text': [...], 'answer_start': [character offsets]}."
        ),
        license="CC BY-SA 4.0",
        source="google-deepmind/xquad@7d30520c xquad.en.json (flattened)",
        citation="Artetxe et al., On the Cross-lingual Transferability of Monolingual Representations, ACL 2020",
        fields={"id": "string", "title": "string", "context": "string", "question": "string",
                "answers": {"text": ["string"], "answer_start": ["int64"]}},
        split_rule=_STD_RULE_TEXT.format(key="the paragraph (context)"),
        splits={"train": 962, "validation": 102, "test": 126},
        rule=_hash_rule("xquad-en", _column("context")),
    ),
    "self-instruct-seed": dict(
        task="instruction following (SFT)",
        folder="self_instruct_seed_tasks",
        files=("seed_tasks.jsonl.gz",),
        description=(
            "The 175 human-written Self-Instruct seed tasks, one instance each: instruction, optional "
            "input, output, is_classification."
        ),
        license="Apache-2.0",
        source="yizhongw/self-instruct@0b26ccaa data/seed_tasks.jsonl (flattened)",
        citation="Wang et al., Self-Instruct, ACL 2023",
        fields={"id": "string", "name": "string", "instruction": "string", "input": "string",
                "output": "string", "is_classification": "bool"},
        split_rule=_STD_RULE_TEXT.format(key="id"),
        splits={"train": 139, "validation": 17, "test": 19},
        rule=_hash_rule("self-instruct-seed", _column("id")),
    ),
    "self-instruct-eval": dict(
        task="instruction following (evaluation only)",
        folder="self_instruct_user_oriented_eval",
        files=("user_oriented_instructions.jsonl.gz",),
        description=(
            "252 expert-written user-oriented instructions (motivated by apps) with one reference "
            "output each. The authors ask that it is never used for training."
        ),
        license="Apache-2.0 (repository license); authors' request: evaluation only",
        source="yizhongw/self-instruct@0b26ccaa human_eval/user_oriented_instructions.jsonl (flattened)",
        citation="Wang et al., Self-Instruct, ACL 2023",
        fields={"id": "string", "motivation_app": "string", "instruction": "string",
                "input": "string", "output": "string"},
        split_rule="evaluation set: test only (never train on it)",
        splits={"test": 252},
        rule=_test_only,
    ),
    "mt-bench": dict(
        task="instruction following (evaluation prompts)",
        folder="mt_bench_questions",
        files=("question.jsonl.gz",),
        description=(
            "MT-Bench: 80 two-turn questions in 8 categories; 'reference' holds short reference "
            "answers for 39 of them (None otherwise)."
        ),
        license="Apache-2.0 (FastChat repository license)",
        source="lm-sys/FastChat@0e6d3e4b fastchat/llm_judge/data/mt_bench/question.jsonl",
        citation="Zheng et al., Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena, NeurIPS 2023",
        fields={"question_id": "int64", "category": "string", "turns": ["string"],
                "reference": ["string"]},
        split_rule="evaluation set: test only",
        splits={"test": 80},
        rule=_test_only,
    ),
    "hh-rlhf-harmless": dict(
        task="reward-model pairs + held-out dialogue prompts",
        folder="hh_rlhf_harmless_base_test",
        files=("harmless-base.test.jsonl.gz",),
        description=(
            "Anthropic HH-RLHF harmless-base test split: 2312 human preference pairs. prompt is the "
            "shared conversation up to and including the last '\\n\\nAssistant:'; prompt + chosen and "
            "prompt + rejected rebuild the original transcripts exactly. CONTENT WARNING: red-team "
            "conversations with offensive, harmful and upsetting text."
        ),
        license="MIT (Copyright 2022 Anthropic)",
        source="anthropics/hh-rlhf@354e5c3c harmless-base/test.jsonl.gz (split into prompt/chosen/rejected)",
        citation="Bai et al., Training a Helpful and Harmless Assistant with RLHF, 2022",
        fields={"id": "string", "prompt": "string", "chosen": "string", "rejected": "string"},
        split_rule=(
            "grouped by the normalised opening human turn; group hash buckets 0-129 dialogue "
            "(held-out conversations), 130-829 train, 830-914 validation, 915-999 test"
        ),
        splits={"dialogue": 302, "train": 1611, "validation": 201, "test": 198},
        rule=_hh,
        warning="Contains offensive and upsetting red-team content (discrimination, violence, abuse, self-harm).",
    ),
    "humaneval": dict(
        task="code generation with unit tests",
        folder="humaneval",
        files=("HumanEval.jsonl.gz",),
        description=(
            "OpenAI HumanEval: 164 Python problems (prompt = signature + docstring, canonical_solution, "
            "test = check(candidate), entry_point). Run tests only in a sandbox."
        ),
        license="MIT (Copyright (c) OpenAI)",
        source="openai/human-eval@6d43fb98 data/HumanEval.jsonl.gz",
        citation="Chen et al., Evaluating Large Language Models Trained on Code, 2021",
        fields={"task_id": "string", "prompt": "string", "entry_point": "string",
                "canonical_solution": "string", "test": "string"},
        split_rule="evaluation set: test only",
        splits={"test": 164},
        rule=_test_only,
    ),
    "mbpp": dict(
        task="code generation with unit tests",
        folder="mbpp",
        files=("mbpp.jsonl.gz",),
        description=(
            "MBPP (original, 974 problems): text (task), code (reference solution), test_list (3 "
            "assert statements), test_setup_code, challenge_test_list. Run tests only in a sandbox."
        ),
        license="CC BY 4.0 (as listed for MBPP; google-research repository is Apache-2.0)",
        source="google-research/google-research mbpp/mbpp.jsonl (copy from OckBench/OckBench@b72752a0)",
        citation="Austin et al., Program Synthesis with Large Language Models, 2021",
        fields={"task_id": "int64", "text": "string", "code": "string", "test_setup_code": "string",
                "test_list": ["string"], "challenge_test_list": ["string"]},
        split_rule="official task_id ranges: 1-10 prompt (few-shot), 11-510 test, 511-600 validation, 601-974 train",
        splits={"prompt": 10, "train": 374, "validation": 90, "test": 500},
        rule=_mbpp_task,
    ),
    "commongen": dict(
        task="constrained generation (use all concepts in one sentence)",
        folder="commongen_v1.0",
        files=("dev.jsonl.gz", "test.jsonl.gz"),
        description=(
            "CommonGen v1.0 (Jan 2020 release): dev 993 + test 1497 concept sets with human references "
            "and rationales. concepts = plain words, concept_set = 'word_POS#...'. The test references "
            "were later withdrawn upstream: do not report leaderboard numbers on them."
        ),
        license="MIT (Copyright 2020 USC INK Research Lab)",
        source="INK-USC/CommonGen@f8172da9 dataset/final_data (flattened)",
        citation="Lin et al., CommonGen, Findings of EMNLP 2020",
        fields={"id": "string", "concepts": ["string"], "concept_set": "string",
                "references": ["string"], "reasons": ["string"]},
        split_rule=(
            "upstream test file -> train; upstream dev file split by hash of concept_set: "
            "buckets 0-399 validation, 400-999 test"
        ),
        splits={"train": 1497, "validation": 418, "test": 575},
        rule=_commongen,
    ),
    "crows-pairs": dict(
        task="social-bias probe (evaluation only)",
        folder="crows_pairs",
        files=("crows_pairs.jsonl.gz",),
        description=(
            "CrowS-Pairs: 1508 minimal sentence pairs over 9 bias types; sent_more is the more stereotypical "
            "sentence (about a historically disadvantaged US group when stereo_antistereo is 'stereo', about "
            "the contrasting advantaged group when 'antistereo'), sent_less the minimal edit. The authors: "
            "evaluation only, never training. Known to contain noisy and invalid pairs (Blodgett et al. 2021): "
            "a probe, not a verdict. CONTENT WARNING: offensive stereotypes by design."
        ),
        license="CC BY-SA 4.0",
        source="nyu-mll/crows-pairs@8aaac11c data/crows_pairs_anonymized.csv (annotation columns dropped)",
        citation="Nangia et al., CrowS-Pairs, EMNLP 2020",
        fields={"id": "int64", "sent_more": "string", "sent_less": "string", "stereo_antistereo": "string",
                "bias_type": "string"},
        split_rule="evaluation set: test only",
        splits={"test": 1508},
        rule=_test_only,
        warning="Contains offensive stereotypes by design (evaluation only).",
    ),
    "bold-prompts": dict(
        task="bias in open-ended generation (evaluation only)",
        folder="bold_prompts",
        files=("bold_prompts_sample50.jsonl.gz",),
        description=(
            "BOLD prompts (Wikipedia sentence beginnings naming a person or group), a fixed subset: at most 50 "
            "prompts per (domain, category) over the 43 groups of the 5 domains (gender, race, "
            "religious_ideology, political_ideology, profession). id = 'domain/category:row' (row: position in "
            "the source file)."
        ),
        license="CC BY-SA 4.0",
        source="amazon-science/bold@3ad652c7 prompts/*_prompt.json (flattened; subset)",
        citation="Dhamala et al., BOLD, FAccT 2021",
        fields={"id": "string", "domain": "string", "category": "string", "name": "string", "prompt": "string"},
        split_rule="evaluation set: test only",
        splits={"test": 2091},
        rule=_test_only,
    ),
}

_PUBLIC_KEYS = ("task", "description", "license", "source", "citation", "folder", "files",
                "fields", "size", "splits", "split_rule", "warning")


def _public(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    meta = {key: spec[key] for key in _PUBLIC_KEYS if key in spec}
    meta["name"] = name
    meta["size"] = sum(spec["splits"].values())
    meta["splits"] = dict(spec["splits"])
    return meta


#: name -> metadata: task, description, license, source (repo@commit path),
#: citation, folder (under DATA_DIR), files, fields (column -> type: "string",
#: "int64", "bool", ["string"] = list of strings, {...} = struct), size
#: (rows), splits (split -> rows; "all" is always available too), split_rule,
#: and warning where the content needs one.
DATASETS: dict[str, dict[str, Any]] = {name: _public(name, spec) for name, spec in _REGISTRY.items()}

# Other spellings accepted by load(): the source folder names.
_ALIASES = {
    "movie-reviews-polarity-v2": "movie-reviews",
    "rt-sentence-polarity-v1": "rt-polarity",
    "uci-imdb-labelled-sentences": "imdb-sentences",
    "cnn-dailymail-t0": "cnn-dailymail",
    "xsum-t0": "xsum",
    "flores200-devtest": "flores200",
    "xquad": "xquad-en",
    "self-instruct-seed-tasks": "self-instruct-seed",
    "self-instruct-user-oriented-eval": "self-instruct-eval",
    "mt-bench-questions": "mt-bench",
    "hh-rlhf": "hh-rlhf-harmless",
    "hh-rlhf-harmless-base-test": "hh-rlhf-harmless",
    "commongen-v1.0": "commongen",
}


def resolve_name(name: str) -> str:
    """Canonical set name for ``name`` (case, ``_``/``-`` and folder aliases ignored).

    Raises :class:`UnknownDatasetError` (a ``KeyError``) listing the valid names
    and the closest match.
    """
    key = re.sub(r"[\s_]+", "-", str(name).strip().lower())
    if key in _REGISTRY:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    close = difflib.get_close_matches(key, list(_REGISTRY) + list(_ALIASES), n=1, cutoff=0.5)
    hint = f" Did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise UnknownDatasetError(
        f"unknown data set {name!r}.{hint} Valid names: {', '.join(sorted(_REGISTRY))}. "
        "A path to a .jsonl / .jsonl.gz file or a datasets.Dataset is accepted too."
    )


def available_splits(name: str) -> tuple[str, ...]:
    """Splits of a vendored set, e.g. ``("train", "validation", "test", "all")``."""
    return (*_REGISTRY[resolve_name(name)]["splits"], "all")


def _to_feature(spec: Any) -> Any:
    if isinstance(spec, str):
        return hf_datasets.Value(spec)
    if isinstance(spec, list):
        return [_to_feature(spec[0])]
    return {key: _to_feature(value) for key, value in spec.items()}


def features(name: str) -> hf_datasets.Features:
    """The :class:`datasets.Features` (column types) of a vendored set."""
    spec = _REGISTRY[resolve_name(name)]["fields"]
    return hf_datasets.Features({key: _to_feature(value) for key, value in spec.items()})


# --------------------------------------------------------------------------
# reading


def read_jsonl(path: Union[str, "os.PathLike[str]"]) -> list[dict[str, Any]]:
    """Rows (dicts) of a JSON Lines file; ``.gz`` files are decompressed.

    Blank lines are skipped; a line that is not a JSON object raises
    ``ValueError`` naming the file and line number.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


@lru_cache(maxsize=None)
def _vendored_rows(name: str) -> tuple[dict[str, Any], ...]:
    spec = _REGISTRY[name]
    rows: list[dict[str, Any]] = []
    for file in spec["files"]:
        path = DATA_DIR / spec["folder"] / file
        if not path.is_file():
            raise FileNotFoundError(f"vendored data file missing: {path} (broken install?)")
        rows.extend(read_jsonl(path))
    return tuple(rows)


def split_of(name: str, row: Mapping[str, Any]) -> str:
    """The split a row belongs to under the rule of set ``name``."""
    return _REGISTRY[resolve_name(name)]["rule"](row)


def _check_split(split: str, valid: Sequence[str], what: str) -> None:
    if split not in valid and split != "all":
        choices = [*valid, "all"]
        close = difflib.get_close_matches(str(split), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown split {split!r} for {what}.{hint} Valid splits: {', '.join(choices)}")


def _build(rows: Sequence[Mapping[str, Any]], feats: hf_datasets.Features | None) -> hf_datasets.Dataset:
    if feats is not None:
        columns = {key: [row.get(key) for row in rows] for key in feats}
        return hf_datasets.Dataset.from_dict(columns, features=feats)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return hf_datasets.Dataset.from_dict({key: [row.get(key) for row in rows] for key in names})


def _check_columns(have: Sequence[str], like: str) -> None:
    missing = [col for col in _REGISTRY[like]["fields"] if col not in have]
    if missing:
        raise ValueError(f"data given with like={like!r} lacks column(s) {missing}; "
                         f"{like!r} has {list(_REGISTRY[like]['fields'])}")


def _select_rows(rows: Sequence[Mapping[str, Any]], rule: Rule, split: str) -> list[Mapping[str, Any]]:
    if split == "all":
        return list(rows)
    return [row for row in rows if rule(row) == split]


def _looks_like_path(value: Any) -> bool:
    if isinstance(value, os.PathLike):
        return True
    text = str(value)
    return (text.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz"))
            or os.sep in text or "/" in text or Path(text).is_file())


def load_jsonl(path: Union[str, "os.PathLike[str]"], split: str = "all", *,
               like: str | None = None) -> hf_datasets.Dataset:
    """A user's JSON Lines file (``.jsonl`` or ``.jsonl.gz``) as a Dataset.

    ``split="all"`` (default) keeps every row. Other splits use ``like``'s rule
    and column types when ``like`` names a vendored set; otherwise the generic
    80/10/10 hash rule (key: ``id``, else ``task_id``, else ``question_id``,
    else the whole row) with splits train / validation / test.
    """
    rows = read_jsonl(path)
    if like is not None:
        like = resolve_name(like)
        _check_columns(list(dict.fromkeys(k for row in rows for k in row)) if rows else
                       list(_REGISTRY[like]["fields"]), like)
        _check_split(split, tuple(_REGISTRY[like]["splits"]), f"data like {like!r}")
        return _build(_select_rows(rows, _REGISTRY[like]["rule"], split), features(like))
    _check_split(split, _GENERIC_SPLITS, f"file {str(path)!r}")
    return _build(_select_rows(rows, _GENERIC_RULE, split), None)


def load(name: PathOrData, split: str = "train", *, like: str | None = None) -> hf_datasets.Dataset:
    """Load a vendored set (or your own data) as an in-memory ``datasets.Dataset``.

    Args:
        name: a key of :data:`DATASETS` (``"_"``/``"-"`` and case do not
            matter; source folder names work too), a path to a ``.jsonl`` /
            ``.jsonl.gz`` file, or a :class:`datasets.Dataset`.
        split: one of ``DATASETS[name]["splits"]`` or ``"all"``. Rules are in
            the module docstring and ``DATASETS[name]["split_rule"]``. For your
            own data: train / validation / test / all.
        like: for your own data only: the vendored set whose columns, column
            types and split rule apply.

    Returns:
        The rows of the split in file order, with the columns and types of
        ``DATASETS[name]["fields"]`` (missing optional values are ``None``).

    Raises:
        UnknownDatasetError: (a ``KeyError``) unknown name; the message lists
            the valid names and the closest match.
        ValueError: unknown split (the message lists the valid ones), or
            ``like`` data without the required columns.
    """
    if isinstance(name, hf_datasets.Dataset):
        return _load_dataset_object(name, split, like)
    if isinstance(name, str) and (_is_registered(name) or not _looks_like_path(name)):
        if like is not None:
            raise ValueError("like= applies to your own data (a path or a Dataset), not to a vendored set")
        canonical = resolve_name(name)
        spec = _REGISTRY[canonical]
        _check_split(split, tuple(spec["splits"]), f"data set {canonical!r}")
        return _build(_select_rows(_vendored_rows(canonical), spec["rule"], split), features(canonical))
    path = Path(name)
    if not path.is_file():
        raise UnknownDatasetError(f"no such file: {str(path)!r} (and not a data set name; "
                                  f"valid names: {', '.join(sorted(_REGISTRY))})")
    return load_jsonl(path, split, like=like)


def _is_registered(name: str) -> bool:
    try:
        resolve_name(name)
    except KeyError:
        return False
    return True


def _load_dataset_object(data: hf_datasets.Dataset, split: str, like: str | None) -> hf_datasets.Dataset:
    if like is not None:
        like = resolve_name(like)
        _check_columns(data.column_names, like)
        rule, valid = _REGISTRY[like]["rule"], tuple(_REGISTRY[like]["splits"])
    else:
        rule, valid = _GENERIC_RULE, _GENERIC_SPLITS
    _check_split(split, valid, "the given Dataset" + (f" (like {like!r})" if like else ""))
    if split == "all":
        return data
    indices = [i for i, row in enumerate(data) if rule(row) == split]
    return data.select(indices, keep_in_memory=True)
