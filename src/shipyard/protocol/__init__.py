"""The wire format, below the server and the inference process that both speak it.

``codec`` turns request bodies (simple JSON, Open Inference Protocol, binary tensors) into
columns and outputs into response bodies; ``http_errors`` is the one map from the error tree
to HTTP statuses. Both the HTTP face (``shipyard.server``) and the raw inference process
(``shipyard.runtimes.raw_child``) import them.
"""
