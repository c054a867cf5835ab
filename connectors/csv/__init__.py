"""The CSV file source."""

from connectors.csv.source import CsvConnector, CsvSettings, CsvSource

__all__ = ["CsvConnector", "CsvSettings", "CsvSource"]
