"""`procure serve`: a local what-if page and the JSON API it uses.

``sources``: where scenarios come from and which files a posted scenario may read; ``worker``: the
solver process; ``app``: the FastAPI application; ``static/``: the page (HTML, CSS, JS, no external
assets). See docs/web.md.
"""
