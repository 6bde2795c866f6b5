"""One module per catalog step: a ``Params`` dataclass and ``run(params, ctx)``."""
