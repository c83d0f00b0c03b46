"""News: loading headline and calendar files (``loading``), time zones (``tz``), calendar figures (``values``) and the
calendar surprise rule with its indicator table (``surprise``). ``python -m bridge.news inspect FILE`` checks a file."""

from bridge.news.loading import load_news, load_news_report

__all__ = ["load_news", "load_news_report"]
