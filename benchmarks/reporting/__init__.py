"""The report's insides: data, statistics, charts, rendering, browser, fixtures."""
