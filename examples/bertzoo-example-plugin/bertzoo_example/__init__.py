"""bertzoo-example-plugin: sliding-window attention and a mean-pooled regression head."""

__version__ = "0.1.0"
