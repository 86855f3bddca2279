"""Bundled model checkpoints, shipped as package data.

``default/`` is the slot of the model that ``--model default`` (or no ``--model``) runs: an
ordinary checkpoint folder (``config.json``, ``*.safetensors``, tokenizer and processor files,
``pixelpilot.json``, ``MODEL_CARD.md``). ``pixelpilot.agent.factory.default_model_path``
resolves it; while the folder holds no ``config.json``, no model ships and the CLI says so.
"""
