"""Train from a few labelled examples, save one .clf file, load it and predict (no LLM involved)."""

import tempfile
from pathlib import Path

from promptclf import PromptClassifier, load

clf = PromptClassifier(progress=False)
clf.add_data_to_class("correct", ["Q: What is 2+3? A: 5.", "Q: What is 10-4? A: 6.", "Q: Capital of France? A: Paris."])
clf.add_data_to_class("incorrect", ["Q: What is 2+2? A: 3.", "Q: What is 5*5? A: 20.", "Q: Capital of Spain? A: Rome."])
clf.train()

path = Path(tempfile.mkdtemp()) / "quality.clf"
clf.save(path)
model = load(path)
for text, ranked in zip(
    ["Q: What is 3+3? A: 6.", "Q: What is 7+1? A: 9."],
    model.classify(["Q: What is 3+3? A: 6.", "Q: What is 7+1? A: 9."]),
):
    print(f"{text!r:32} -> {ranked[0]['class_name']} ({ranked[0]['prob']:.2f})")
