"""Sub-command groups of the ``paretolm`` CLI; every module here has ``register(subparsers)``."""
