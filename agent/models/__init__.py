"""Models: the ``ChatModel`` protocol and its message types (``messages``), the backends
(``client``: any OpenAI-compatible endpoint; ``local``: a GGUF in-process; ``scripted``: a
replay queue), the reply grammar for constrained decoding (``grammar``), local weights
(``weights``), and which backend a setting means (``backends``)."""
