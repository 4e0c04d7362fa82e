import json

import pytest

from promptclf import InvalidInputError, PromptClassifier
from promptclf.store import ExampleStore
from tests.conftest import write_jsonl


def test_lamini_jsonl_loads_as_is(tmp_path, fake_embedder):
    path = tmp_path / "lamini.jsonl"
    write_jsonl(
        path,
        [
            {"class_name": "correct", "examples": ["Q: 2+2? A: 4.", "Q: 3+3? A: 6."]},
            {"class_name": "incorrect", "examples": ["Q: 2+2? A: 5."]},
        ],
    )
    clf = PromptClassifier(embedder=fake_embedder, saved_examples_path=path)
    assert clf.get_data() == {"correct": ["Q: 2+2? A: 4.", "Q: 3+3? A: 6."], "incorrect": ["Q: 2+2? A: 5."]}


def test_round_trip_keeps_provenance_and_stays_lamini_readable(tmp_path):
    s = ExampleStore()
    s.add("a", ["one", "two"])
    s.add("a", ["three"], source="generated", meta={"model": "m", "phase": "expand"})
    s.add("b", ["four"])
    s.add_class("c")
    path = tmp_path / "ex.jsonl"
    s.save(path)
    for line in path.read_text().splitlines():  # every line has Lamini's two keys
        rec = json.loads(line)
        assert isinstance(rec["class_name"], str) and isinstance(rec["examples"], list)
    back = ExampleStore.load(path)
    assert [(e.text, e.class_name, e.source, e.meta) for e in back] == [
        (e.text, e.class_name, e.source, e.meta) for e in s
    ]
    assert back.classes == ["a", "b", "c"]


def test_additions_are_appended_as_they_happen(tmp_path):
    path = tmp_path / "ex.jsonl"
    s = ExampleStore(path)
    s.add("a", "first")
    s.add("a", ["second", "first"])  # the duplicate is not written again
    assert [json.loads(x)["examples"] for x in path.read_text().splitlines()] == [["first"], ["second"]]
    assert len(ExampleStore.load(path)) == 2


def test_bad_lines_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"class_name": "a", "examples": ["x"]}\n{oops\n')
    with pytest.raises(InvalidInputError, match="line 2"):
        ExampleStore.load(path)
    path.write_text('{"class_name": "a", "examples": ["x", 3]}\n')
    with pytest.raises(InvalidInputError, match=r"line 1: examples\[1\] must be a string"):
        ExampleStore.load(path)


def test_no_shared_default_path_leaks_between_classifiers(fake_embedder):
    a = PromptClassifier(embedder=fake_embedder).add_data_to_class("x", "only in a")
    b = PromptClassifier(embedder=fake_embedder)
    assert a.get_data() == {"x": ["only in a"]}
    assert b.get_data() == {}


def test_save_and_load_examples(tmp_path, fake_embedder):
    clf = PromptClassifier(embedder=fake_embedder).add_data_to_class("x", ["1 2 3", "4 5 6"])
    clf.add_data_to_class("y", "7 8 9")
    clf.save_examples(tmp_path / "e.jsonl")
    other = PromptClassifier(embedder=fake_embedder).load_examples(tmp_path / "e.jsonl")
    assert other.get_data() == clf.get_data()
