"""The tagging engine as pure logic."""
