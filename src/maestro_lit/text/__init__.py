"""Text utilities shared by reward components and benchmark judges.

Model-backed helpers (``SentenceEncoder``, ``SequenceClassifierScorer``) live in their own
modules and are imported from there, so importing this package stays cheap.
"""
