"""The README's quickstart, as is: `.venv/bin/python examples/quickstart.py` (a few minutes on 2 cores)."""

from promptclf import PromptClassifier, load

clf = PromptClassifier()  # local LLM (SmolLM2-135M, llama.cpp) + local embedder (all-MiniLM-L6-v2)
clf.prompt_train(
    {
        "spam": "Unsolicited text messages that advertise prizes, cash, loans or discounts, "
        "or ask you to click or reply.",
        "ham": "Ordinary personal text messages between friends, family or colleagues.",
    }
)
print(clf.predict(["WIN a FREE cruise, text YES now", "Are we still on for lunch?"]))
print(clf.classify(["WIN a FREE cruise, text YES now"]))
clf.add_data_to_class("ham", "Can you call me when you get this?")  # a mistake? add the text, retrain
clf.train()
clf.save("sms.clf")

print(load("sms.clf").predict(["You have been chosen for a cash prize, call now"]))  # no LLM, no PyTorch
