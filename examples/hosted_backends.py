"""Use any OpenAI-compatible endpoint for generation and/or embeddings.

OPENAI_API_KEY=... python examples/hosted_backends.py
# or a local server:  python -m llama_cpp.server --model model.gguf --port 8000
OPENAI_BASE_URL=http://127.0.0.1:8000/v1 python examples/hosted_backends.py smollm2
"""

import sys

from promptclf import PromptClassifier
from promptclf.llms.hosted import OpenAILLM

model = sys.argv[1] if len(sys.argv) > 1 else "gpt-4o-mini"
clf = PromptClassifier(llm=OpenAILLM(model, max_concurrency=8), examples_per_class=16)
clf.prompt_train(
    {
        "billing": "Customer support messages about invoices, charges, refunds and payment methods.",
        "technical": "Customer support messages about errors, crashes, login problems and bugs.",
    }
)
print(clf.predict(["I was charged twice this month", "The app crashes when I open settings"]))
