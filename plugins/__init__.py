"""Built-in plugins: registered through entry points in bertzoo's own pyproject.toml, like any outside plugin."""
