"""Backtesting of the news policy on price bars: bars loading, the replay engine, statistics and reports."""
