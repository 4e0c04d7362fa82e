"""Which layers, epochs and learning rate for ``distill=True``: a plain head on real labels, full vs distilled.

    .venv/bin/python bench/distill_layers.py trec6 0,2,4 [epochs=2] [texts=5000] [learning_rate=1e-4]

The first 5,000 rows of the train split's fixed permutation (``pool_rows``) with their real labels;
the packaged MiniLM (the teacher) and a student keeping the given layers, trained with
sentence-transformers' trainer and ``MSELoss`` on the teacher's unit vectors of those texts (no time
budget); a logistic regression (C=1) on each one's vectors, macro-F1 on the fixed test sample. A
screening run, one line per call: the settings it chose are then measured through the product by
bench/distill.py (BENCHMARKS.md, "A distilled encoder").
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from common import pool_rows, read_rows, scores, test_sample


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import MSELoss
    from sklearn.linear_model import LogisticRegression

    import promptclf.distill as D
    from promptclf.embedders.local import resolve_model_path

    ds, layers = sys.argv[1], tuple(int(x) for x in sys.argv[2].split(","))
    epochs = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    lr = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4
    teacher = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    rows = pool_rows(read_rows(ds, "train"), n)
    X, y = [r["text"] for r in rows], [r["label"] for r in rows]
    test_x, test_y = test_sample(ds)

    def vectors(m, texts):
        return m.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    def f1(train_vectors, test_vectors):
        head = LogisticRegression(C=1.0, max_iter=2000).fit(train_vectors, y)
        return scores(test_y, list(head.predict(test_vectors)))["macro_f1"]

    target = vectors(teacher, X)
    full = f1(target, vectors(teacher, test_x))
    D.KEEP_LAYERS = layers
    student = D.student_of(teacher)
    student.max_seq_length = D.MAX_SEQ_LENGTH
    data = Dataset.from_dict({"sentence": X, "label": target.tolist()})
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        args = Args(output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=32, learning_rate=lr,
                    warmup_steps=0.1, save_strategy="no", report_to="none", logging_steps=10**9,
                    disable_tqdm=True, use_cpu=True)  # fmt: skip
        t = time.perf_counter()
        SentenceTransformerTrainer(model=student, args=args, train_dataset=data, loss=MSELoss(student)).train()
        seconds = time.perf_counter() - t
    student.max_seq_length = teacher.max_seq_length
    student.eval()
    small = f1(vectors(student, X), vectors(student, test_x))
    print(f"{ds} layers={list(layers)} epochs={epochs:g} texts={n} lr={lr:g}: full {full:.3f} "
          f"distilled {small:.3f} ({100 * (small - full):+.1f} pts), distilled in {seconds:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
