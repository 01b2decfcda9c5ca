"""Import shim (scripts/gpu/shims/README.md): importing works; anything used raises ImportError."""


def __getattr__(name: str):
    if name.startswith("__"):  # probes such as __version__ or __path__ find nothing, as on any module
        raise AttributeError(name)
    raise ImportError(f"boto3 is a shim on this machine (scripts/gpu/setup.sh): install it to use boto3.{name}")
