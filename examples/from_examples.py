"""Train from a few labelled examples, save one .clf file, load it and predict (no LLM involved)."""

import tempfile
from pathlib import Path

from promptclf import PromptClassifier, load

clf = PromptClassifier(progress=False)
clf.add_data_to_class(
    "billing",
    ["I was charged twice this month.", "How do I update my credit card?", "Please refund my last invoice."],
)
clf.add_data_to_class(
    "technical",
    ["The app crashes when I open settings.", "I can't log in after the update.", "Sync fails with error 500."],
)
clf.train()

path = Path(tempfile.mkdtemp()) / "tickets.clf"
clf.save(path)
model = load(path)
texts = ["Why is there an extra fee on my statement?", "The page stays blank after I press save."]
for text, ranked in zip(texts, model.classify(texts)):
    print(f"{text!r:48} -> {ranked[0]['class_name']} ({ranked[0]['prob']:.2f})")
