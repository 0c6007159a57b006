# Stand-in for the `filelock` package (not installable here): llama.cpp's harness only imports it
# for the session fixture our conftest.py replaces.
class FileLock:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
