"""Import shim of ``botocore.config`` (scripts/gpu/shims/README.md)."""


class Config:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ImportError("botocore is a shim on this machine (scripts/gpu/setup.sh): install it to use Config")
