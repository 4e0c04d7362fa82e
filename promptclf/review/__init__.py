"""The correction loop: which texts to label next (``suggest``), and the terminal review that asks for them.

``suggest.py`` chooses texts (numpy and scikit-learn only); ``session.py`` keeps the answers (a journal
appended as they are given) and retrains in the background; ``tui.py`` is the interactive screen.
"""
