"""The text representation: a patient's timeline serialized to readable text, embedded by a language model.

- ``ehrpredict.text.serialize``: deterministic, versioned serializers (``markdown``, ``recent_codes``);
- ``ehrpredict.text.encoders``: text encoders behind one interface (a local sentence-transformers
  model or an OpenAI-compatible ``/v1/embeddings`` endpoint) with an on-disk embedding cache.

Nothing heavy is imported here: torch and sentence-transformers load only when an encoder is built.
"""
