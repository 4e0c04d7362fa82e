"""Train a classifier from class descriptions alone, with the local LLM and embedder (offline, no key)."""

import logging
import sys

from promptclf import PromptClassifier

logging.basicConfig(level=logging.INFO, format="%(message)s")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 8

clf = PromptClassifier(examples_per_class=n)
clf.prompt_train(
    {
        "sports": "News about sports: games, matches, scores, athletes, teams and tournaments.",
        "business": "News about business: companies, markets, stocks, earnings and the economy.",
    }
)
print(clf.predict(["The striker scored twice in the cup final.", "Shares fell after the earnings report."]))
report = clf.generation_report_
print(f"{report['kept']} examples kept from {report['calls']} LLM calls in {report['seconds']:.0f}s")
clf.add_data_to_class("business", "The central bank raised interest rates again.")
clf.train()
