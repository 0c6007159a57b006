# Stand-in for the `wget` package (not installable here): llama.cpp's harness uses it only to fetch
# media for multimodal tests, which the router tests never call.
def download(url, out=None, bar=None):
    raise RuntimeError(f"no network access in tests: cannot download {url}")
