"""Not a rule file: this makes the bundled pack package data (``taggers.rules_pack``), so an
installed tagger finds it from any directory (``taggers.bundled``)."""
