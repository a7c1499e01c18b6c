"""The HTML pages hccprog writes, from jinja2 templates with autoescape (``reports/templates``): one
page shell (``page.html.j2``) that the run report and the patient card extend.

A value handed to a template is escaped unless it is :func:`markup`: a section that the code built
from values it escaped itself (tables, figures, captions).
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from markupsafe import Markup

from hccprog import __version__

__all__ = ["Markup", "markup", "render_page"]


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hccprog.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a value the template needs and the code forgot is an error
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def markup(html_text: str) -> Markup:
    """Mark ``html_text``, built by hccprog with every value in it escaped, as safe for a template."""
    return Markup(html_text)


def render_page(template: str, *, title: str, **context) -> str:
    """Render ``template`` (a file of ``reports/templates``) into a complete HTML page.

    Parameters
    ----------
    template
        The template's file name, e.g. ``"report.html.j2"``.
    title
        The page's ``<title>`` (escaped).
    **context
        The template's other values; strings are escaped unless passed through :func:`markup`.

    Returns
    -------
    str
        The page's HTML.

    Examples
    --------
    >>> page = render_page("page.html.j2", title="a <b> title")
    >>> "<title>a &lt;b&gt; title</title>" in page
    True
    """
    return _environment().get_template(template).render(title=title, version=__version__, **context)
